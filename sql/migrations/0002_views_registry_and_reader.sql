-- Views are versioned by a hash of their definition; offsets belong to a
-- table (one per version), so a rebuilt version keeps its own.
ALTER TABLE freshet.views ALTER COLUMN version TYPE text USING version::text;
ALTER TABLE freshet.views ADD COLUMN IF NOT EXISTS table_name text;
ALTER TABLE freshet.views ADD COLUMN IF NOT EXISTS last_flush_at timestamptz;

-- A role for readers (dashboards, notebooks): it can SELECT the views that
-- freshet publishes and nothing else. Log in as a user granted this role.
DO $$
BEGIN
  CREATE ROLE freshet_reader NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT USAGE ON SCHEMA public TO freshet_reader;

-- Waits until `view_name` has applied offset `target` of `part` (its stored
-- next offset is beyond it), or until `timeout` passes. Returns whether it
-- did. With the (partition, offset) a writer returned for a command, this
-- gives read-your-writes from SQL:
--   SELECT freshet.await_offset('stock_levels', 3, 1042, '2s');
CREATE OR REPLACE FUNCTION freshet.await_offset(view_name text, part integer, target bigint,
                                                timeout interval DEFAULT '2 seconds')
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = freshet, pg_temp
AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + timeout;
BEGIN
  LOOP
    IF EXISTS (SELECT 1 FROM freshet.views v JOIN freshet.offsets o ON o.view_name = v.table_name
               WHERE v.name = await_offset.view_name AND o.partition = part AND o.next_offset > target) THEN
      RETURN true;
    END IF;
    IF clock_timestamp() >= deadline THEN
      RETURN false;
    END IF;
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$;
GRANT USAGE ON SCHEMA freshet TO freshet_reader;
REVOKE ALL ON FUNCTION freshet.await_offset(text, integer, bigint, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION freshet.await_offset(text, integer, bigint, interval) TO freshet_reader;

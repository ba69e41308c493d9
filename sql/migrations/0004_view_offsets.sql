-- The offsets each live view version reflects, for readers: live SQL
-- queries read them in the same snapshot as their rows, so every result
-- says how fresh it is. Readers cannot see freshet.offsets itself.
CREATE OR REPLACE FUNCTION freshet.view_offsets(view_names text[])
RETURNS TABLE (view_name text, part integer, next_offset bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = freshet, pg_temp
AS $$
  SELECT v.name, o.partition, o.next_offset
  FROM freshet.views v JOIN freshet.offsets o ON o.view_name = v.table_name
  WHERE v.name = ANY (view_names)
  ORDER BY v.name, o.partition
$$;
REVOKE ALL ON FUNCTION freshet.view_offsets(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION freshet.view_offsets(text[]) TO freshet_reader;

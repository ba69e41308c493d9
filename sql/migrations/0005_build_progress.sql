-- Progress of a `freshet rebuild` (offsets done of total, rate, ETA), so
-- that view processes can show it in their status endpoint.
ALTER TABLE freshet.views ADD COLUMN IF NOT EXISTS build_progress jsonb;

-- A changed definition (or a rebuild) is built into its own table beside
-- the live one; the registry names it until it is swapped in.
ALTER TABLE freshet.views ADD COLUMN IF NOT EXISTS building_table text;

-- When the live version of a view was published. A view process that finds
-- a version of another definition live, published after the process
-- started, is running an outdated definition: it waits instead of building
-- its own and swapping it back (which would make two processes with
-- different definitions rebuild each other's tables forever).
ALTER TABLE freshet.views ADD COLUMN IF NOT EXISTS published_at timestamptz;

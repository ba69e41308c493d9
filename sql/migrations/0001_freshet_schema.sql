-- The freshet schema: where views keep their Kafka offsets (committed in the
-- same transaction as their rows) and the registry of views.
CREATE SCHEMA IF NOT EXISTS freshet;

CREATE TABLE IF NOT EXISTS freshet.offsets (
  view_name   text        NOT NULL,
  topic       text        NOT NULL,
  partition   integer     NOT NULL,
  next_offset bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (view_name, topic, partition)
);

CREATE TABLE IF NOT EXISTS freshet.views (
  name        text        PRIMARY KEY,
  version     integer     NOT NULL,
  spec        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  state       text        NOT NULL DEFAULT 'live',
  updated_at  timestamptz NOT NULL DEFAULT now()
);

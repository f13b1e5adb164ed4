-- /api/calls pages with a key (started_at, linkedid): newest first, ties broken
-- by linkedid, each page one index range scan.
CREATE INDEX calls_started_at_linkedid ON calls (started_at DESC, linkedid DESC);
DROP INDEX calls_started_at;

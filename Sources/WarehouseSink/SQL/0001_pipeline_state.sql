-- Bookkeeping shared by every consumer group that writes to PostgreSQL: the highest stream entry
-- id applied per (group, stream partition), written in the same transaction as the data it
-- covers. After a crash, entries at or below it are acknowledged without being applied again.
CREATE TABLE stream_positions (
    consumer_group text        NOT NULL,
    stream         text        NOT NULL,
    last_ms        bigint      NOT NULL,   -- the id's millisecond part
    last_seq       bigint      NOT NULL,   -- the id's sequence part
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, stream)
);

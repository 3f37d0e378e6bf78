\echo Use "CREATE EXTENSION pgkeel_fence" to load this file. \quit

-- What a write committing now would meet: writable, why, seconds until (negative: since) the deadline.
CREATE FUNCTION pgkeel_fence_status(
    OUT writable boolean, OUT reason text, OUT seconds_left double precision, OUT enforce boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'pgkeel_fence_status'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

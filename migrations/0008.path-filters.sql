-- depends: 0007.batch-delivery
-- Path filters per watch (SPEC 11): the patterns as given, and as Postgres regexes with
-- whether each includes (a `!` pattern excludes). NULL: every file. scan/filters.py
-- compiles them with pathspec, as `.docoraignore` is compiled.
ALTER TABLE watches ADD COLUMN paths text[],
                    ADD COLUMN path_regexes text[],
                    ADD COLUMN path_includes boolean[],
                    -- Bumped by every filter change; part of delivery ids, so that a file
                    -- excluded and included again is a new event for de-duplicating receivers.
                    ADD COLUMN paths_version integer NOT NULL DEFAULT 0;

-- GitIgnoreSpec's decision, replayed as pathspec makes it: patterns from the last to the
-- first; a match of the file itself (priority 2) decides at once, a match of a directory
-- above it (priority 1: its one capturing group then holds "/") decides unless an earlier
-- pattern matches the file itself. No match: not included.
CREATE FUNCTION docora_path_included(path text, regexes text[], includes boolean[])
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    out_include boolean := false;
    out_priority integer := 0;
BEGIN
    IF regexes IS NULL THEN
        RETURN true;
    END IF;
    FOR i IN REVERSE coalesce(array_length(regexes, 1), 0) .. 1 LOOP
        IF path ~ regexes[i] THEN
            IF coalesce(substring(path FROM regexes[i]), '') <> '/' THEN
                RETURN includes[i];
            END IF;
            IF out_priority < 1 THEN
                out_include := includes[i];
                out_priority := 1;
            END IF;
        END IF;
    END LOOP;
    RETURN out_include;
END
$$;

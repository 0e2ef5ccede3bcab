DROP FUNCTION IF EXISTS docora_path_included(text, text[], boolean[]);
ALTER TABLE watches DROP COLUMN IF EXISTS paths_version, DROP COLUMN IF EXISTS path_includes, DROP COLUMN IF EXISTS path_regexes,
    DROP COLUMN IF EXISTS paths;

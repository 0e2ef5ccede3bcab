ALTER TABLE delivered_files DROP COLUMN IF EXISTS size;

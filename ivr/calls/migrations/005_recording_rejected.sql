-- A recording whose path is not a regular file inside the recordings folder
-- (``../`` in MIXMONITOR_FILENAME, a symlink out of the folder, a FIFO or a
-- device) is stored as 'rejected', with the reason in ``problem``, never read.
ALTER TABLE recordings DROP CONSTRAINT recordings_status_check;
ALTER TABLE recordings ADD CONSTRAINT recordings_status_check
    CHECK (status IN ('ok', 'empty', 'missing', 'unreadable', 'rejected'));

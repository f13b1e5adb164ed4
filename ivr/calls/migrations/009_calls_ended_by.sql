-- What ended a call when it was not the people on it. 'asterisk_restart' /
-- 'asterisk_shutdown': Asterisk hung the call's channels up on its way down
-- (SoftHangupRequest with the AST_SOFTHANGUP_SHUTDOWN bit, then the Shutdown event);
-- its Hangup says "16 Normal Clearing" exactly as when a caller hangs up.
-- NULL: the caller or the agent (hangup_cause / hangup_cause_text say how).
ALTER TABLE calls ADD COLUMN ended_by text;

-- The view's c.* was expanded when it was created: make it again so it shows the
-- new column. The outcome rules are unchanged.
DROP VIEW call_outcomes;
CREATE VIEW call_outcomes AS
SELECT c.*,
       CASE
           WHEN c.ended_at IS NULL AND c.lost_at IS NULL THEN 'in_progress'
           WHEN c.agent_answered_at IS NOT NULL THEN 'answered'
           WHEN c.abandoned_at IS NOT NULL THEN 'abandoned'
           WHEN c.queued_at IS NOT NULL THEN 'unanswered'
           WHEN c.lost_at IS NOT NULL THEN 'lost'
           ELSE 'ended_in_menu'
       END AS outcome
FROM calls c;

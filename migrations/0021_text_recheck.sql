-- Free text's recheck as one function the planner does not look into
-- (issue 17).
--
-- The search words find the rows holding q's words (migration 0012); the
-- recheck keeps those where q appears as typed. Written out in the query,
-- the recheck was two LIKEs on expressions PostgreSQL has no statistics for,
-- which it guessed keep about 0.05 % of the rows, so for a word in every
-- row it read the whole range and sorted it (80 ms over a day of 5 million
-- alerts) instead of reading back from the newest until the page was full
-- (a few ms). A PL/pgSQL function is never inlined: the planner takes its
-- default guess for a boolean function, a third, which is nearer the truth
-- (the recheck drops only rows whose words are all there but not as typed).
-- pattern is the LIKE pattern, already lowercased.
CREATE FUNCTION alert_text_matches(summary text, rule_name text, host_name text, host_id uuid, seq bigint,
                                   alert_id uuid, event_detail jsonb, pattern text)
RETURNS boolean LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    -- The columns first: a match there is a match in the whole text, which
    -- begins with them, and spares reading the payload (migration 0018).
    RETURN lower(summary || ' ' || rule_name || ' ' || host_name) LIKE pattern
        OR alert_search_text(summary, rule_name, host_name, alert_detail(host_id, seq, alert_id, event_detail)) LIKE pattern;
END
$$;

-- Free text (GET /api/v1/alerts?q=): the words of each alert, indexed.
--
-- search_words holds the words (runs of letters and digits, lowercased) and
-- the pairs of neighbouring words, each once, of the alert's search text: summary, rule, host, the start of the
-- command line, the user name (contract.SearchText and SearchWords). The
-- exporter fills it: splitting text into words in SQL (to_tsvector, or even
-- translate + string_to_array) cost several times what the index itself
-- costs an insert (bench/search). Rows written by anything else have none
-- and free text does not find them.
--
-- The plugin finds the rows holding q's word, or each pair of neighbouring
-- words of q, through the GIN index,
-- then keeps those whose alert_search_text contains q as typed.
-- fastupdate lets an insert append its words to the index's pending list
-- instead of updating one posting tree per word; the list is merged in bulk
-- once it reaches gin_pending_list_limit (4 MB) or by (auto)vacuum.
-- Adding a nullable column rewrites nothing; every partition, including
-- those EnsurePartitions creates later, gets the index.
ALTER TABLE alerts ADD COLUMN search_words text[];

CREATE INDEX alerts_search_idx ON alerts USING gin (search_words) WITH (fastupdate = on);

-- contract.SearchText in SQL.
CREATE FUNCTION alert_search_text(summary text, rule_name text, host_name text, detail jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(summary || ' ' || rule_name || ' ' || host_name || ' ' ||
                 coalesce(left(detail ->> 'process.command_line', 1024), '') || ' ' ||
                 coalesce(detail ->> 'process.user.name', ''))
$$;

-- Central rule sets: rules defined once in Grafana and pushed to the agents
-- over OpAMP. A rule set's rules are a YAML list in the agent's `rules:`
-- schema (docs/agent-config.md), checked by the writer with the validator of
-- `tripwire validate`. A set is scoped to every host ('global'), to a host
-- group ('group': every key of selector equals the host's attribute of that
-- name) or to one host ('host': host_name is the certificate's CN).
--
-- Every change is a new row of rule_set_versions, which is never updated:
-- the current state of a set is rule_sets.version, a disable is a version
-- with enabled = false, and each version keeps who made it (the Grafana
-- user). The plugin writes only through the functions below, which run as
-- the schema's owner and can do nothing else.
CREATE TABLE rule_sets (
    rule_set_id bigserial   PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    version     integer     NOT NULL CHECK (version >= 1),  -- the current version
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rule_set_versions (
    rule_set_id bigint      NOT NULL REFERENCES rule_sets (rule_set_id),
    version     integer     NOT NULL CHECK (version >= 1),
    scope       text        NOT NULL CHECK (scope IN ('global', 'group', 'host')),
    selector    jsonb       NOT NULL DEFAULT '{}',
    host_name   text,
    enabled     boolean     NOT NULL,
    rules       text        NOT NULL CHECK (length(rules) <= 1048576),
    author      text        NOT NULL CHECK (length(author) BETWEEN 1 AND 256),
    note        text        NOT NULL DEFAULT '' CHECK (length(note) <= 4000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_set_id, version),
    CHECK ((scope = 'host') = (host_name IS NOT NULL AND host_name <> '')),
    CHECK ((scope = 'group') = (selector <> '{}'))
);

-- tripwire_rule_scope_matches says whether a set scoped by p_scope,
-- p_selector and p_host applies to a host with attributes p_attrs (a JSON
-- object of resource attribute names to string values). It is the one
-- definition of scoping: the collector computes effective rule sets with it
-- and the plugin answers "which hosts get this" with it.
CREATE FUNCTION tripwire_rule_scope_matches(p_scope text, p_selector jsonb, p_host text, p_attrs jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_scope
        WHEN 'global' THEN true
        WHEN 'group'  THEN p_selector <> '{}' AND p_attrs @> p_selector
        WHEN 'host'   THEN p_attrs ->> 'host.name' = p_host
        ELSE false
    END
$$;

-- tripwire_host_attributes are a known host's attributes for scoping, from
-- what its agent last reported.
CREATE FUNCTION tripwire_host_attributes(h hosts)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'host.name', h.host_name,
        'host.id', h.host_ext_id,
        'os.type', h.platform,
        'host.arch', h.arch,
        'service.version', h.agent_version))
$$;

-- tripwire_check_rule_selector refuses a selector that is not an object of
-- string values (containment would then mean something else).
CREATE FUNCTION tripwire_check_rule_selector(p_selector jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(p_selector) <> 'object' THEN
        RAISE EXCEPTION 'selector is not an object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each(p_selector) WHERE jsonb_typeof(value) <> 'string') THEN
        RAISE EXCEPTION 'selector values must be strings' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- tripwire_create_rule_set creates a set at version 1 and returns its id; a
-- taken name raises unique_violation. Every save NOTIFYs tripwire_rule_sets
-- with the set's id, so the collectors push the change at once.
CREATE FUNCTION tripwire_create_rule_set(p_name text, p_scope text, p_selector jsonb, p_host text,
                                         p_enabled boolean, p_rules text, p_author text, p_note text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM public.tripwire_check_rule_selector(p_selector);
    INSERT INTO public.rule_sets (name, version) VALUES (p_name, 1) RETURNING rule_set_id INTO id;
    INSERT INTO public.rule_set_versions (rule_set_id, version, scope, selector, host_name, enabled, rules, author, note)
    VALUES (id, 1, p_scope, p_selector, NULLIF(p_host, ''), p_enabled, p_rules, p_author, p_note);
    PERFORM pg_notify('tripwire_rule_sets', id::text);
    RETURN id;
END
$$;

-- tripwire_update_rule_set saves a new version of set p_id made from version
-- p_base. It returns one row: (true, the new version) when saved, (true,
-- the current version) when the content equals the current version's, and
-- (false, the current version) when p_base is not the current version (the
-- set changed since the editor read it: nothing is saved). No row: no such
-- set.
CREATE FUNCTION tripwire_update_rule_set(p_id bigint, p_base integer, p_scope text, p_selector jsonb, p_host text,
                                         p_enabled boolean, p_rules text, p_author text, p_note text)
RETURNS TABLE (saved boolean, version integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    cur public.rule_set_versions%ROWTYPE;
    v   integer;
BEGIN
    PERFORM public.tripwire_check_rule_selector(p_selector);
    SELECT s.version INTO v FROM public.rule_sets s WHERE s.rule_set_id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v <> p_base THEN
        RETURN QUERY SELECT false, v;
        RETURN;
    END IF;
    SELECT * INTO cur FROM public.rule_set_versions r WHERE r.rule_set_id = p_id AND r.version = v;
    IF cur.scope = p_scope AND cur.selector = p_selector AND cur.host_name IS NOT DISTINCT FROM NULLIF(p_host, '')
       AND cur.enabled = p_enabled AND cur.rules = p_rules THEN
        RETURN QUERY SELECT true, v;
        RETURN;
    END IF;
    INSERT INTO public.rule_set_versions (rule_set_id, version, scope, selector, host_name, enabled, rules, author, note)
    VALUES (p_id, v + 1, p_scope, p_selector, NULLIF(p_host, ''), p_enabled, p_rules, p_author, p_note);
    UPDATE public.rule_sets s SET version = v + 1 WHERE s.rule_set_id = p_id;
    PERFORM pg_notify('tripwire_rule_sets', p_id::text);
    RETURN QUERY SELECT true, v + 1;
END
$$;

REVOKE ALL ON FUNCTION tripwire_create_rule_set(text, text, jsonb, text, boolean, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tripwire_update_rule_set(bigint, integer, text, jsonb, text, boolean, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tripwire_create_rule_set(text, text, jsonb, text, boolean, text, text, text) TO tripwire_reader;
GRANT EXECUTE ON FUNCTION tripwire_update_rule_set(bigint, integer, text, jsonb, text, boolean, text, text, text) TO tripwire_reader;
GRANT SELECT ON rule_sets, rule_set_versions TO tripwire_reader;

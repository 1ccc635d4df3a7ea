-- Key lifecycle: optional expiry, and which key came from TME_BOOTSTRAP_API_KEY (so a revoked
-- bootstrap key is recognised and never brought back by a restart).
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
ALTER TABLE api_keys ADD COLUMN bootstrap boolean NOT NULL DEFAULT false;
UPDATE api_keys SET bootstrap = true WHERE id = 'key_bootstrap';
-- The bootstrap key's prefix used to hold its first 10 characters: too much of a chosen key.
UPDATE api_keys SET prefix = left(prefix, 4) WHERE bootstrap;

-- Scopes are defined once, in functions/core/auth/api-keys.ts (SCOPES); a CHECK listing them
-- here would need a migration for every new scope. The format check stays.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS known_scopes;
ALTER TABLE api_keys ADD CONSTRAINT scope_format
  CHECK (cardinality(scopes) > 0 AND array_to_string(scopes, ',') ~ '^[a-z]+(:[a-z]+)?(,[a-z]+(:[a-z]+)?)*$');
ALTER TABLE api_keys ADD CONSTRAINT namespace_format CHECK (namespace ~ '^[a-z0-9][a-z0-9_-]{0,62}$') NOT VALID;

CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

-- Idempotency records used to keep a subscription's signing secret in clear: drop it from
-- every stored response, and forget what is past its 24 hours anyway.
DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours';
UPDATE idempotency_keys
   SET response_body = jsonb_set(response_body, '{signing_secret}', 'null'::jsonb)
       || jsonb_build_object('signing_secret_note',
            'shown once, in the response that created it; it is not stored (rotate it with PATCH {"rotate_secret": true})')
 WHERE jsonb_typeof(response_body) = 'object' AND response_body ? 'signing_secret';

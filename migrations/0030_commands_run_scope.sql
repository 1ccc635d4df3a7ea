-- Running a shell command now needs the commands:run scope beside tasks:write or
-- schedules:write. Keys made before it could run commands with tasks:write alone; they keep
-- that power (an upgrade must not stop a producer that runs commands), and say so in their
-- scopes. Keys with schedules:write alone do not get it: that they could run a command
-- through a schedule's template was the hole this closes. To take it away, make a key
-- without it (POST /keys) and revoke the old one.

-- A database older than 0035 still has the CHECK listing the first five scopes, and this file
-- runs before 0035 there (0035 drops it the same way; scopes are defined in code since).
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS known_scopes;

UPDATE api_keys
   SET scopes = scopes || ARRAY['commands:run']
 WHERE 'tasks:write' = ANY (scopes)
   AND NOT 'commands:run' = ANY (scopes);

-- Cookies set by scripts (issue 13): the snippet reports the names of first-party cookies it finds
-- in document.cookie that the site does not declare, and the cookie report counts them beside the
-- middleware's Set-Cookie observations. A row seen only by script has times_set = 0.
ALTER TABLE cookie_report ADD COLUMN times_seen_by_script INTEGER NOT NULL DEFAULT 0;

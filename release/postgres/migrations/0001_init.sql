-- Apps, with their deploy journal and deploy lease in the same row, so
-- that one row lock serializes everything that changes an app.
CREATE TABLE apps (
    name          text PRIMARY KEY,
    current       integer NOT NULL DEFAULT 0,
    latest        integer NOT NULL DEFAULT 0,
    formation     jsonb NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL,
    deploy        jsonb,
    lease_owner   text NOT NULL DEFAULT '',
    lease_token   bigint NOT NULL DEFAULT 0,
    lease_expires timestamptz,
    token_seq     bigint NOT NULL DEFAULT 0
);

CREATE TABLE releases (
    app            text NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),
    image_ref      text NOT NULL DEFAULT '',
    image_digest   text NOT NULL DEFAULT '',
    processes      jsonb NOT NULL DEFAULT '{}',
    config         bytea NOT NULL DEFAULT '',
    attachments    jsonb NOT NULL DEFAULT '[]',
    cause          text NOT NULL DEFAULT '',
    description    text NOT NULL DEFAULT '',
    rollback_of    integer NOT NULL DEFAULT 0,
    status         text NOT NULL,
    failure_reason text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (app, version)
);

-- Users of SuperTokens apps, as the core face's UserRoles and UserMetadata calls keep them, per
-- organization: roles with permissions (app-wide), users' roles (per tenant), users' metadata.
CREATE TABLE app_roles (
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    role             TEXT NOT NULL,
    PRIMARY KEY (organization_id, role)
);

CREATE TABLE app_role_permissions (
    organization_id  TEXT NOT NULL,
    role             TEXT NOT NULL,
    permission       TEXT NOT NULL,
    PRIMARY KEY (organization_id, role, permission),
    FOREIGN KEY (organization_id, role) REFERENCES app_roles (organization_id, role)
);
CREATE INDEX app_role_permissions_by_permission ON app_role_permissions (organization_id, permission);

CREATE TABLE app_user_roles (
    organization_id  TEXT NOT NULL,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL,
    PRIMARY KEY (organization_id, tenant_id, user_id, role),
    FOREIGN KEY (organization_id, role) REFERENCES app_roles (organization_id, role)
);
CREATE INDEX app_user_roles_by_role ON app_user_roles (organization_id, tenant_id, role);

CREATE TABLE app_user_metadata (
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    user_id          TEXT NOT NULL,
    metadata         JSONB NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);

//! What operators do to an organization's users (the console; the admin API for passkeys): find a
//! user, list and end their login sessions, rename and list their passkeys. Each call is scoped to the
//! organization: a user, session or passkey of another one is "missing".

use super::model::{LoginSession, User};
use super::service::{LoginService, normalize_email};
use crate::passkey::Passkey;
use crate::{Error, ErrorCode};

/// Most live login sessions listed for one user.
pub const MAX_LISTED_SESSIONS: usize = 200;

fn missing_user() -> Error {
    Error::new(ErrorCode::EntityMissing).with_message("This organization has no such user.")
}

impl LoginService {
    /// A user of the organization by email (when the query has an `@`) or by id; `None` when there is no
    /// such user in this organization.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization, `entityInvalid` for a malformed email.
    pub async fn find_user(&self, organization_id: &str, query: &str) -> Result<Option<User>, Error> {
        let organization = self.organization(organization_id).await?;
        let query = query.trim();
        if query.contains('@') {
            let email = normalize_email(query)?;
            return Ok(self.store.user_by_email(&organization.id, &email, None).await?);
        }
        Ok(self.store.user(query).await?.filter(|u| u.organization_id == organization.id))
    }

    /// A user of the organization by id.
    ///
    /// # Errors
    /// `entityMissing` for an unknown organization or a user of another one.
    pub async fn organization_user(&self, organization_id: &str, user_id: &str) -> Result<User, Error> {
        let user = self.store.user(user_id).await?.filter(|u| u.organization_id == organization_id);
        user.ok_or_else(missing_user)
    }

    /// A user's live login sessions, newest first.
    ///
    /// # Errors
    /// `entityMissing` for a user of another organization.
    pub async fn user_login_sessions(&self, organization_id: &str, user_id: &str) -> Result<Vec<LoginSession>, Error> {
        let user = self.organization_user(organization_id, user_id).await?;
        Ok(self.store.live_login_sessions(&user.id, MAX_LISTED_SESSIONS).await?)
    }

    /// Ends one of a user's login sessions: its tokens stop working at once.
    ///
    /// # Errors
    /// `entityMissing` when the session is not a live one of this user in this organization.
    pub async fn end_user_login_session(
        &self,
        organization_id: &str,
        user_id: &str,
        session_id: &str,
    ) -> Result<(), Error> {
        let user = self.organization_user(organization_id, user_id).await?;
        let session = self.store.login_session(session_id).await?;
        let ours = session.filter(|s| s.user_id == user.id && s.organization_id == organization_id);
        let ended = match ours {
            Some(session) => self.store.end_login_session(&session.id, self.clock.now()).await?,
            None => false,
        };
        if ended {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::EntityMissing).with_message("This user has no such live session."))
        }
    }

    /// Ends every live login session of a user; how many were ended.
    ///
    /// # Errors
    /// `entityMissing` for a user of another organization.
    pub async fn end_user_login_sessions(&self, organization_id: &str, user_id: &str) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut ended = 0;
        // Pages of the listing until none is left, so more than one page of sessions all end.
        loop {
            let live = self.user_login_sessions(organization_id, user_id).await?;
            let before = ended;
            for session in &live {
                if self.store.end_login_session(&session.id, now).await? {
                    ended += 1;
                }
            }
            if ended == before {
                return Ok(ended);
            }
        }
    }

    /// A user's passkeys.
    ///
    /// # Errors
    /// `entityMissing` for a user of another organization.
    pub async fn user_passkeys(&self, organization_id: &str, user_id: &str) -> Result<Vec<Passkey>, Error> {
        let user = self.organization_user(organization_id, user_id).await?;
        Ok(self.store.user_passkeys(&user.id).await?)
    }

    /// Renames a user's passkey for them (a name that says which device it is).
    ///
    /// # Errors
    /// `missingFields` for an empty name, `entityMissing` for a passkey this user does not have.
    pub async fn rename_user_passkey(
        &self,
        organization_id: &str,
        user_id: &str,
        credential_id: &str,
        name: &str,
    ) -> Result<(), Error> {
        let user = self.organization_user(organization_id, user_id).await?;
        let name = super::passkey_steps::passkey_name(Some(name))
            .ok_or_else(|| Error::new(ErrorCode::MissingFields).with_message("A passkey needs a name."))?;
        if self.store.rename_passkey(&user.id, credential_id, &name).await? {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::EntityMissing).with_message("This user has no such passkey."))
        }
    }
}

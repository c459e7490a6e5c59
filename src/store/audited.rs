//! Security changes written together with their audit event: turning TOTP
//! on and off, new recovery codes, removing a key, ending a session, and
//! the sign-ins with a TOTP or recovery code (the time step spent or the
//! code used up, the session row, the events and what the sign-in clears,
//! in one transaction: while the audit log cannot be written, the code
//! signs no one in and stays unused). Each
//! change, the ending of the account's other sessions that goes with it,
//! and its audit event are one transaction on either backend (PostgreSQL
//! locks the user's row first, so concurrent changes of one account
//! serialize; SQLite has one writer connection). A change that is refused
//! (no such enrollment, the last key, no such session) rolls back and
//! writes no event. The trait methods are on
//! [`AccountStore`](super::account::AccountStore) (`*_with_event`).

use super::account::{CodeSignInWrites, sql};
use super::{DeleteOutcome, NewAuditEvent, StoreError};
use std::time::SystemTime;

/// Locks the user's row for the rest of the transaction (PostgreSQL).
#[cfg(feature = "postgres")]
const LOCK_USER_PG: &str = "SELECT 1 FROM users WHERE handle = $1 FOR UPDATE";

/// The implementation over one sqlx pool: `$write` the pool, `$lock` the
/// statement (if any) that locks the user's row for the transaction.
macro_rules! impl_audited_sql {
    ($ty:ty, $db:ty, |$s:ident| $write:expr, $lock:expr) => {
        impl $ty {
            async fn aud_begin(&self, h: &[u8]) -> Result<sqlx::Transaction<'_, $db>, StoreError> {
                let $s = self;
                let mut tx = $s.begin_write().await?;
                let lock: Option<&str> = $lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).bind(h).fetch_optional(&mut *tx).await?;
                }
                Ok(tx)
            }

            async fn aud_finish(
                &self,
                mut tx: sqlx::Transaction<'_, $db>,
                h: &[u8],
                keep: Option<&[u8]>,
                events: &[NewAuditEvent],
                now: i64,
            ) -> Result<u64, StoreError> {
                // The change before this was a write: the transaction holds
                // the write lock (see session_index).
                let (ended, ids) = match keep {
                    Some(k) => self.acct_end_others_in(&mut tx, h, Some(k)).await?,
                    None => (0, Vec::new()),
                };
                Self::aud_insert_events(&mut tx, events, now).await?;
                tx.commit().await?;
                self.acct_forget_sessions(h, &ids);
                Ok(ended)
            }

            async fn aud_insert_events(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[NewAuditEvent],
                now: i64,
            ) -> Result<(), StoreError> {
                for e in events {
                    sqlx::query(sql::INSERT_AUDIT)
                        .bind(now)
                        .bind(e.kind.as_str())
                        .bind(e.username.as_deref())
                        .bind(e.user_handle.as_deref())
                        .bind(e.credential_id.as_deref())
                        .bind(e.code.as_deref())
                        .bind(e.detail.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// What a code sign-in writes after its change, then the commit.
            async fn aud_code_sign_in_rest(
                &self,
                mut tx: sqlx::Transaction<'_, $db>,
                w: CodeSignInWrites<'_>,
                now: i64,
            ) -> Result<(), StoreError> {
                let r = w.session;
                self.acct_note_session(r)?;
                sqlx::query(sql::INSERT_SESSION)
                    .bind(&r.id)
                    .bind(&r.user_handle)
                    .bind(&r.method)
                    .bind(r.created_unix_ms)
                    .bind(r.last_seen_unix_ms)
                    .bind(r.expires_unix_ms)
                    .execute(&mut *tx)
                    .await?;
                Self::aud_insert_events(&mut tx, w.events, now).await?;
                sqlx::query("DELETE FROM otp_attempts WHERE subject = $1")
                    .bind(w.clears.throttle_subject.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM account_failures WHERE user_handle = $1 AND consecutive < $2")
                    .bind(w.clears.user_handle.as_slice())
                    .bind(i64::from(w.lockout_at))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn aud_totp_sign_in(
                &self,
                h: &[u8],
                step: u64,
                w: CodeSignInWrites<'_>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                let step = super::otp::to_i64("time step", step)?;
                let now = super::ms(now);
                let $s = self;
                let mut tx = $s.begin_write().await?;
                let r = sqlx::query(
                    "UPDATE otp_totp SET last_step = $2, last_used_ms = $3 \
                     WHERE user_handle = $1 AND (last_step IS NULL OR last_step < $2)",
                )
                .bind(h)
                .bind(step)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() != 1 {
                    return Ok(false);
                }
                self.aud_code_sign_in_rest(tx, w, now).await?;
                Ok(true)
            }

            pub(crate) async fn aud_recovery_sign_in(
                &self,
                h: &[u8],
                code_id: i64,
                w: CodeSignInWrites<'_>,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                let now = super::ms(now);
                let $s = self;
                let mut tx = $s.begin_write().await?;
                let r = sqlx::query("DELETE FROM otp_recovery_codes WHERE id = $1 AND user_handle = $2")
                    .bind(code_id)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                if r.rows_affected() != 1 {
                    return Ok(false);
                }
                self.aud_code_sign_in_rest(tx, w, now).await?;
                Ok(true)
            }

            async fn aud_put_recovery_codes(
                tx: &mut sqlx::Transaction<'_, $db>,
                h: &[u8],
                hashes: &[String],
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM otp_recovery_codes WHERE user_handle = $1").bind(h).execute(&mut **tx).await?;
                for hash in hashes {
                    sqlx::query("INSERT INTO otp_recovery_codes (user_handle, hash, created_ms) VALUES ($1, $2, $3)")
                        .bind(h)
                        .bind(hash)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            #[allow(clippy::too_many_arguments)]
            pub(crate) async fn aud_confirm_totp(
                &self,
                h: &[u8],
                secret: &[u8],
                step: u64,
                recovery_hashes: &[String],
                keep: &[u8],
                events: &[NewAuditEvent],
                now: SystemTime,
            ) -> Result<Option<u64>, StoreError> {
                let step = super::otp::to_i64("time step", step)?;
                let now = super::ms(now);
                let mut tx = self.aud_begin(h).await?;
                let taken: Option<(String, i64, i64)> = sqlx::query_as(
                    "DELETE FROM otp_totp_pending WHERE user_handle = $1 AND secret = $2 \
                     RETURNING algorithm, digits, period",
                )
                .bind(h)
                .bind(secret)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((algorithm, digits, period)) = taken else { return Ok(None) };
                sqlx::query(
                    "INSERT INTO otp_totp (user_handle, secret, algorithm, digits, period, created_ms, last_step, last_used_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
                     ON CONFLICT (user_handle) DO UPDATE SET secret = excluded.secret, algorithm = excluded.algorithm, \
                     digits = excluded.digits, period = excluded.period, created_ms = excluded.created_ms, \
                     last_step = excluded.last_step, last_used_ms = NULL",
                )
                .bind(h)
                .bind(secret)
                .bind(algorithm)
                .bind(digits)
                .bind(period)
                .bind(now)
                .bind(step)
                .execute(&mut *tx)
                .await?;
                Self::aud_put_recovery_codes(&mut tx, h, recovery_hashes, now).await?;
                Ok(Some(self.aud_finish(tx, h, Some(keep), events, now).await?))
            }

            pub(crate) async fn aud_delete_totp(
                &self,
                h: &[u8],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<Option<u64>, StoreError> {
                let mut tx = self.aud_begin(h).await?;
                sqlx::query("DELETE FROM otp_totp_pending WHERE user_handle = $1").bind(h).execute(&mut *tx).await?;
                let r = sqlx::query("DELETE FROM otp_totp WHERE user_handle = $1").bind(h).execute(&mut *tx).await?;
                if r.rows_affected() == 0 {
                    return Ok(None);
                }
                let ended = self.aud_finish(tx, h, Some(keep), std::slice::from_ref(event), super::ms(now)).await?;
                Ok(Some(ended))
            }

            pub(crate) async fn aud_replace_recovery_codes(
                &self,
                h: &[u8],
                hashes: &[String],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<u64, StoreError> {
                let now = super::ms(now);
                let mut tx = self.aud_begin(h).await?;
                Self::aud_put_recovery_codes(&mut tx, h, hashes, now).await?;
                self.aud_finish(tx, h, Some(keep), std::slice::from_ref(event), now).await
            }

            pub(crate) async fn aud_delete_credential(
                &self,
                h: &[u8],
                credential_id: &[u8],
                keep: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<(DeleteOutcome, u64), StoreError> {
                let mut tx = self.aud_begin(h).await?;
                // The user's row is locked (PostgreSQL) or this is the one
                // writer (SQLite): the count and the delete cannot
                // interleave with another delete.
                let r = sqlx::query(
                    "DELETE FROM credentials WHERE id = $1 AND user_handle = $2 \
                     AND (SELECT COUNT(*) FROM credentials WHERE user_handle = $2) > 1",
                )
                .bind(credential_id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() == 0 {
                    let exists = sqlx::query("SELECT 1 FROM credentials WHERE id = $1 AND user_handle = $2")
                        .bind(credential_id)
                        .bind(h)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let outcome = if exists.is_some() { DeleteOutcome::LastCredential } else { DeleteOutcome::NotFound };
                    return Ok((outcome, 0));
                }
                let ended = self.aud_finish(tx, h, Some(keep), std::slice::from_ref(event), super::ms(now)).await;
                self.credential_deleted(h);
                Ok((DeleteOutcome::Deleted, ended?))
            }

            pub(crate) async fn aud_end_session(
                &self,
                h: &[u8],
                id: &[u8],
                event: &NewAuditEvent,
                now: SystemTime,
            ) -> Result<bool, StoreError> {
                let $s = self;
                let mut tx = $s.begin_write().await?;
                let r = sqlx::query(sql::END_SESSION).bind(h).bind(id).execute(&mut *tx).await?;
                if r.rows_affected() == 0 {
                    return Ok(false);
                }
                self.aud_finish(tx, h, None, std::slice::from_ref(event), super::ms(now)).await?;
                self.acct_forget_sessions(h, super::session_index::SessionIndex::id(id).as_slice());
                Ok(true)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_audited_sql!(super::sqlite::SqliteStore, sqlx::Sqlite, |s| s.write_pool(), None);
#[cfg(feature = "postgres")]
impl_audited_sql!(super::postgres::PgStore, sqlx::Postgres, |s| s.pool(), Some(LOCK_USER_PG));

#[cfg(feature = "sqlite")]
impl super::sqlite::SqliteStore {
    /// The user's cached credentials are stale now.
    fn credential_deleted(&self, handle: &[u8]) {
        self.invalidate_cached_handle(handle);
    }
}

#[cfg(feature = "postgres")]
impl super::postgres::PgStore {
    /// PostgreSQL keeps no cache.
    fn credential_deleted(&self, _handle: &[u8]) {}
}

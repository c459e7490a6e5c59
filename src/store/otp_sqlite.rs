//! [`OtpStore`] for the SQLite store.
//!
//! Everything goes through the store's one writer connection (also the
//! reads, which are few and must see the writes just made), so statements of
//! different requests never run at the same time. The guarantees still come
//! from single statements, as with PostgreSQL: the last-step
//! compare-and-set, the recovery-code `DELETE`, and attempts counted after
//! they are inserted.

use super::otp::{
    AttemptWindow, OtpStore, RecoveryCodeHash, TOTP_COLUMNS, TotpRow, TotpSecretRecord, to_i64, window_start_ms,
};
use super::sqlite::SqliteStore;
use super::{StoreError, ms};
use sqlx::Row;
use std::time::{Duration, SystemTime};

impl OtpStore for SqliteStore {
    async fn put_pending_totp(&self, user_handle: &[u8], r: &TotpSecretRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO otp_totp_pending (user_handle, secret, algorithm, digits, period, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_handle) DO UPDATE SET secret = excluded.secret, algorithm = excluded.algorithm, \
             digits = excluded.digits, period = excluded.period, created_ms = excluded.created_ms",
        )
        .bind(user_handle)
        .bind(r.secret.as_slice())
        .bind(&r.algorithm)
        .bind(i64::from(r.digits))
        .bind(to_i64("period", r.period)?)
        .bind(r.created_unix_ms)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    async fn pending_totp(&self, user_handle: &[u8]) -> Result<Option<TotpSecretRecord>, StoreError> {
        let row: Option<TotpRow> = sqlx::query_as(
            "SELECT secret, algorithm, digits, period, created_ms, NULL AS last_step, NULL AS last_used_ms \
             FROM otp_totp_pending WHERE user_handle = $1",
        )
        .bind(user_handle)
        .fetch_optional(self.write_pool())
        .await?;
        row.map(TotpRow::into_record).transpose()
    }

    async fn confirm_totp(
        &self,
        user_handle: &[u8],
        secret: &[u8],
        step: u64,
        recovery_hashes: &[String],
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let step = to_i64("time step", step)?;
        let now = ms(now);
        let mut tx = self.write_pool().begin().await?;
        let taken = sqlx::query(
            "DELETE FROM otp_totp_pending WHERE user_handle = $1 AND secret = $2 \
             RETURNING algorithm, digits, period",
        )
        .bind(user_handle)
        .bind(secret)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(p) = taken else { return Ok(false) };
        let (algorithm, digits, period): (String, i64, i64) = (p.try_get(0)?, p.try_get(1)?, p.try_get(2)?);
        sqlx::query(
            "INSERT INTO otp_totp (user_handle, secret, algorithm, digits, period, created_ms, last_step, last_used_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
             ON CONFLICT (user_handle) DO UPDATE SET secret = excluded.secret, algorithm = excluded.algorithm, \
             digits = excluded.digits, period = excluded.period, created_ms = excluded.created_ms, \
             last_step = excluded.last_step, last_used_ms = NULL",
        )
        .bind(user_handle)
        .bind(secret)
        .bind(algorithm)
        .bind(digits)
        .bind(period)
        .bind(now)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM otp_recovery_codes WHERE user_handle = $1")
            .bind(user_handle)
            .execute(&mut *tx)
            .await?;
        for h in recovery_hashes {
            sqlx::query("INSERT INTO otp_recovery_codes (user_handle, hash, created_ms) VALUES ($1, $2, $3)")
                .bind(user_handle)
                .bind(h)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn totp(&self, user_handle: &[u8]) -> Result<Option<TotpSecretRecord>, StoreError> {
        let row: Option<TotpRow> =
            sqlx::query_as(&format!("SELECT {TOTP_COLUMNS} FROM otp_totp WHERE user_handle = $1"))
                .bind(user_handle)
                .fetch_optional(self.write_pool())
                .await?;
        row.map(TotpRow::into_record).transpose()
    }

    async fn advance_totp_step(&self, user_handle: &[u8], step: u64, now: SystemTime) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE otp_totp SET last_step = $2, last_used_ms = $3 \
             WHERE user_handle = $1 AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user_handle)
        .bind(to_i64("time step", step)?)
        .bind(ms(now))
        .execute(self.write_pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_totp(&self, user_handle: &[u8]) -> Result<bool, StoreError> {
        let mut tx = self.write_pool().begin().await?;
        sqlx::query("DELETE FROM otp_totp_pending WHERE user_handle = $1").bind(user_handle).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM otp_totp WHERE user_handle = $1").bind(user_handle).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn recovery_code_hashes(&self, user_handle: &[u8]) -> Result<Vec<RecoveryCodeHash>, StoreError> {
        let rows = sqlx::query("SELECT id, hash FROM otp_recovery_codes WHERE user_handle = $1 ORDER BY id")
            .bind(user_handle)
            .fetch_all(self.write_pool())
            .await?;
        rows.iter().map(|r| Ok(RecoveryCodeHash { id: r.try_get(0)?, hash: r.try_get(1)? })).collect()
    }

    async fn consume_recovery_code(&self, user_handle: &[u8], id: i64, _now: SystemTime) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM otp_recovery_codes WHERE id = $1 AND user_handle = $2")
            .bind(id)
            .bind(user_handle)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_handle: &[u8],
        hashes: &[String],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_pool().begin().await?;
        sqlx::query("DELETE FROM otp_recovery_codes WHERE user_handle = $1")
            .bind(user_handle)
            .execute(&mut *tx)
            .await?;
        for h in hashes {
            sqlx::query("INSERT INTO otp_recovery_codes (user_handle, hash, created_ms) VALUES ($1, $2, $3)")
                .bind(user_handle)
                .bind(h)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_otp_attempt(
        &self,
        subject: &str,
        now: SystemTime,
        window: Duration,
    ) -> Result<AttemptWindow, StoreError> {
        let start = window_start_ms(now, window);
        let pool = self.write_pool();
        sqlx::query("DELETE FROM otp_attempts WHERE at_ms < $1").bind(start).execute(pool).await?;
        // Before the row exists: a key sign-in lifts only noted subjects (clear_hints).
        self.note_attempt_row(subject);
        sqlx::query("INSERT INTO otp_attempts (subject, at_ms) VALUES ($1, $2)")
            .bind(subject)
            .bind(ms(now))
            .execute(pool)
            .await?;
        let row = sqlx::query("SELECT COUNT(*), MIN(at_ms) FROM otp_attempts WHERE subject = $1 AND at_ms >= $2")
            .bind(subject)
            .bind(start)
            .fetch_one(pool)
            .await?;
        let count: i64 = row.try_get(0)?;
        let oldest: Option<i64> = row.try_get(1)?;
        Ok(AttemptWindow { count: u32::try_from(count).unwrap_or(u32::MAX), oldest_unix_ms: oldest.unwrap_or(start) })
    }

    async fn clear_otp_attempts(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM otp_attempts WHERE subject = $1").bind(subject).execute(self.write_pool()).await?;
        Ok(())
    }
}

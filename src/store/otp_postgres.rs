//! [`OtpStore`] for the PostgreSQL store.
//!
//! The guarantees hold across server instances because they come from
//! single statements: the last-step compare-and-set (a concurrent `UPDATE`
//! of the same row waits for the first and then re-checks `last_step <
//! $step`), the recovery-code `DELETE` (the second of two concurrent ones
//! finds the row gone), and attempts counted after their `INSERT`
//! committed. Confirming an enrollment is one transaction.

use super::otp::{
    AttemptWindow, OtpStore, RecoveryCodeHash, TOTP_COLUMNS, TotpRow, TotpSecretRecord, to_i64, window_start_ms,
};
use super::postgres::PgStore;
use super::{StoreError, ms};
use sqlx::Row;
use std::time::{Duration, SystemTime};

impl OtpStore for PgStore {
    async fn put_pending_totp(&self, user_handle: &[u8], r: &TotpSecretRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO otp_totp_pending (user_handle, secret, algorithm, digits, period, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_handle) DO UPDATE SET secret = EXCLUDED.secret, algorithm = EXCLUDED.algorithm, \
             digits = EXCLUDED.digits, period = EXCLUDED.period, created_ms = EXCLUDED.created_ms",
        )
        .bind(user_handle)
        .bind(r.secret.as_slice())
        .bind(&r.algorithm)
        .bind(i64::from(r.digits))
        .bind(to_i64("period", r.period)?)
        .bind(r.created_unix_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn pending_totp(&self, user_handle: &[u8]) -> Result<Option<TotpSecretRecord>, StoreError> {
        let row: Option<TotpRow> = sqlx::query_as(
            "SELECT secret, algorithm, digits, period, created_ms, NULL::BIGINT AS last_step, NULL::BIGINT AS last_used_ms \
             FROM otp_totp_pending WHERE user_handle = $1",
        )
        .bind(user_handle)
        .fetch_optional(self.pool())
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
        let mut tx = self.pool().begin().await?;
        // Lock the user: concurrent replacements of the same user's codes serialize here.
        sqlx::query("SELECT 1 FROM users WHERE handle = $1 FOR UPDATE")
            .bind(user_handle)
            .fetch_optional(&mut *tx)
            .await?;
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
             ON CONFLICT (user_handle) DO UPDATE SET secret = EXCLUDED.secret, algorithm = EXCLUDED.algorithm, \
             digits = EXCLUDED.digits, period = EXCLUDED.period, created_ms = EXCLUDED.created_ms, \
             last_step = EXCLUDED.last_step, last_used_ms = NULL",
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
                .fetch_optional(self.pool())
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
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_totp(&self, user_handle: &[u8]) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM otp_totp_pending WHERE user_handle = $1").bind(user_handle).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM otp_totp WHERE user_handle = $1").bind(user_handle).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    async fn recovery_code_hashes(&self, user_handle: &[u8]) -> Result<Vec<RecoveryCodeHash>, StoreError> {
        let rows = sqlx::query("SELECT id, hash FROM otp_recovery_codes WHERE user_handle = $1 ORDER BY id")
            .bind(user_handle)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(RecoveryCodeHash { id: r.try_get(0)?, hash: r.try_get(1)? })).collect()
    }

    async fn consume_recovery_code(&self, user_handle: &[u8], id: i64, _now: SystemTime) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM otp_recovery_codes WHERE id = $1 AND user_handle = $2")
            .bind(id)
            .bind(user_handle)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_handle: &[u8],
        hashes: &[String],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // Lock the user: concurrent replacements of the same user's codes serialize here.
        sqlx::query("SELECT 1 FROM users WHERE handle = $1 FOR UPDATE")
            .bind(user_handle)
            .fetch_optional(&mut *tx)
            .await?;
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
        let pool = self.pool();
        sqlx::query("DELETE FROM otp_attempts WHERE at_ms < $1").bind(start).execute(pool).await?;
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
        sqlx::query("DELETE FROM otp_attempts WHERE subject = $1").bind(subject).execute(self.pool()).await?;
        Ok(())
    }
}

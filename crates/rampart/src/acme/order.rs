//! One ACME exchange with the CA (RFC 8555 section 7): the account, an order for a set of names
//! with its challenges answered, and revocation. instant-acme speaks the protocol (JWS, nonces,
//! polling); this module decides what is published where and for how long.

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::challenge::Challenges;
use super::config::{AcmeConfig, ChallengeKind};
use crate::store::{AcmeChallenge, Store, StoredCertificate, now};

/// How long the CA gets to validate every challenge, and then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);
/// A published challenge answer is forgotten after this, even if its order was abandoned.
const CHALLENGE_TTL_S: i64 = 600;

/// The account for the configured directory: the one in the store, or a new one stored for every
/// instance (the first instance to store one wins, and the others use it).
pub(super) async fn account(config: &AcmeConfig, store: &Store) -> Result<Account, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("ACME account: {what}: {e}");
    let builder = || match &config.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| fail("CA file", &e)),
        None => Account::builder().map_err(|e| fail("HTTP client", &e)),
    };
    if let Some(json) = store
        .acme_account(&config.directory)
        .await
        .map_err(|e| fail("store", &e))?
    {
        return restore(builder()?, &json).await;
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: config.agree_terms,
        only_return_existing: false,
    };
    let (account, credentials) = builder()?
        .create(&new, config.directory.clone(), None)
        .await
        .map_err(|e| fail("creation", &e))?;
    let ours = serde_json::to_string(&credentials).map_err(|e| fail("encoding", &e))?;
    let stored = store
        .save_acme_account(&config.directory, &ours)
        .await
        .map_err(|e| fail("store", &e))?;
    if stored == ours {
        tracing::info!(directory = %config.directory, account = %account.id(), "ACME account created");
        Ok(account)
    } else {
        // Another instance stored its account first: use that one.
        restore(builder()?, &stored).await
    }
}

async fn restore(builder: instant_acme::AccountBuilder, json: &str) -> Result<Account, String> {
    let credentials: AccountCredentials = serde_json::from_str(json)
        .map_err(|e| format!("ACME account: the stored credentials do not parse: {e}"))?;
    builder
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("ACME account: {e}"))
}

/// Milliseconds since the epoch: what tells instances that the stored certificate changed.
fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What an order needs besides the account.
pub(super) struct OrderContext<'a> {
    pub(super) store: &'a Store,
    pub(super) challenges: &'a Challenges,
    pub(super) kind: ChallengeKind,
    /// How long every instance needs to see a published challenge (one sync).
    pub(super) publish_wait: Duration,
}

/// Orders a certificate for `domains` and returns it with its new key. Every challenge answer it
/// publishes is withdrawn at the end, whatever the outcome.
pub(super) async fn issue(
    account: &Account,
    domains: &[String],
    ctx: &OrderContext<'_>,
) -> Result<StoredCertificate, String> {
    let mut published = Vec::new();
    let result = order(account, domains, ctx, &mut published).await;
    for challenge in &published {
        ctx.challenges.remove(challenge);
        if let Err(e) = ctx.store.remove_acme_challenge(&challenge.token).await {
            tracing::warn!(error = %e, "cannot withdraw an ACME challenge (it expires by itself)");
        }
    }
    result
}

async fn order(
    account: &Account,
    domains: &[String],
    ctx: &OrderContext<'_>,
    published: &mut Vec<AcmeChallenge>,
) -> Result<StoredCertificate, String> {
    let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let kind = match ctx.kind {
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        ChallengeKind::Http01 => ChallengeType::Http01,
    };
    // First publish every answer, then wait until every instance has them, then tell the CA.
    let mut pending = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => return Err(format!("authorization is {other:?}")),
            }
            let domain = authorization.identifier().to_string();
            let challenge = authorization.challenge(kind.clone()).ok_or_else(|| {
                format!(
                    "the CA offers no {} challenge for {domain}",
                    ctx.kind.as_str()
                )
            })?;
            let answer = AcmeChallenge {
                token: challenge.token.clone(),
                kind: ctx.kind.as_str().to_owned(),
                domain,
                key_authorization: challenge.key_authorization().as_str().to_owned(),
                expires_at: now().saturating_add(CHALLENGE_TTL_S),
            };
            ctx.store
                .put_acme_challenge(&answer)
                .await
                .map_err(|e| format!("publishing a challenge: {e}"))?;
            ctx.challenges.add(&answer)?;
            pending.push(answer.token.clone());
            published.push(answer);
        }
    }
    if !pending.is_empty() {
        // The CA may reach any instance, and each answers from memory (handshakes and the
        // redirect listener never query the store): wait until every one has synced.
        tokio::time::sleep(ctx.publish_wait).await;
    }
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                continue;
            };
            if pending.contains(&challenge.token) {
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge: {e}"))?;
            }
        }
    }
    let retries = RetryPolicy::default().timeout(VALIDATION_TIMEOUT);
    match order.poll_ready(&retries).await {
        Ok(OrderStatus::Ready) => {}
        Ok(status) => return Err(format!("the order is {status:?}: a challenge failed")),
        Err(e) => return Err(format!("validation: {e}")),
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let retries = RetryPolicy::default().timeout(ISSUANCE_TIMEOUT);
    let cert_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    let key = crate::tls::certified_key_from_pem(&cert_pem, &key_pem)?;
    let not_after = key
        .cert
        .first()
        .and_then(|leaf| crate::tls::not_after_unix(leaf))
        .ok_or("the issued certificate does not parse")?;
    Ok(StoredCertificate {
        cert_pem,
        key_pem,
        not_after,
        issued_at: unix_millis(),
        revoked_at: None,
    })
}

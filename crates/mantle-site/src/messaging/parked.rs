//! Parked messages, as operators see and handle them.

use mantle_store::{Effect, Store, SubStore};
use serde::{Deserialize, Serialize};

use super::{Messaging, Outgoing, Receipt};

/// A message parked in some store's outbox, as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedMessage {
    /// `STORE_ADDRESS/OUTBOX_ID`: what `retry` and `discard` take.
    pub id: String,
    /// The message's own id.
    pub message: String,
    /// The sending store's address.
    pub from: String,
    /// The recipient as addressed.
    pub to: String,
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Failed attempts.
    pub attempts: u32,
    /// Why it was parked.
    pub reason: String,
}

impl Messaging {
    /// Every parked message in the site's stores (site, app and user stores).
    pub async fn parked(&self) -> crate::Result<Vec<ParkedMessage>> {
        let mut stores = vec![self.0.stores.site_store().clone()];
        let subs = self
            .0
            .stores
            .site_store()
            .read(|r| r.query::<SubStore>().all())
            .await?;
        for sub in subs {
            stores.push(self.0.stores.at_address(&sub.name).await?);
        }
        let mut out = Vec::new();
        for store in stores {
            let from = self.0.stores.address_of(&store).await?;
            for e in store.outbox().await? {
                if !e.parked || e.kind != Outgoing::KIND {
                    continue;
                }
                let Ok(m) = serde_json::from_str::<Outgoing>(&e.payload) else {
                    continue;
                };
                out.push(ParkedMessage {
                    id: format!("{from}/{}", e.id.raw()),
                    message: m.id,
                    from: from.clone(),
                    to: m.to,
                    kind: m.kind,
                    attempts: e.attempts,
                    reason: e.last_error.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn find(&self, id: &str) -> crate::Result<(Store, mantle_store::EffectId, Outgoing)> {
        let bad = || crate::SiteError::BadMessageId(id.to_string());
        let (address, n) = id.rsplit_once('/').ok_or_else(bad)?;
        let n: i64 = n.parse().map_err(|_| bad())?;
        let store = self.0.stores.at_address(address).await?;
        let entry = store
            .outbox()
            .await?
            .into_iter()
            .find(|e| e.id.raw() == n && e.parked && e.kind == Outgoing::KIND)
            .ok_or_else(|| crate::SiteError::NoSuchParkedMessage(id.to_string()))?;
        let m = serde_json::from_str::<Outgoing>(&entry.payload).map_err(|e| {
            crate::SiteError::Damaged {
                what: format!("parked message '{id}'"),
                reason: e.to_string(),
            }
        })?;
        Ok((store, entry.id, m))
    }

    /// Puts a parked message back in line. Refused for a message whose
    /// sender was already answered with a refusal: it may have undone its
    /// side (a refund), so delivering now would apply the message twice in
    /// effect.
    pub async fn retry(&self, id: &str) -> crate::Result<()> {
        let (store, effect, m) = self.find(id).await?;
        let key = format!("answer:{}", m.id);
        let answered = store
            .read(move |r| {
                r.query::<Receipt>()
                    .filter(Receipt::KEY.eq(key.as_str()))
                    .exists()
            })
            .await?;
        if answered {
            return Err(crate::SiteError::MessageAnswered(id.to_string()));
        }
        store.retry_effect(effect).await?;
        Ok(())
    }

    /// Deletes a parked message for good.
    pub async fn discard(&self, id: &str) -> crate::Result<()> {
        let (store, effect, _) = self.find(id).await?;
        store.drop_effect(effect).await?;
        Ok(())
    }
}

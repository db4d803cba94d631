//! A whole site: its configuration beside its stores, and rebuilding a
//! site on a fresh machine from the target alone (and the key).

use std::path::Path;

use crate::restore::{Catalog, Restored, restore_store};
use crate::seal::Keyring;
use crate::target::Target;
use crate::{Backup, BackupError, Result, names};

/// The site's own files that are backed up beside its stores.
const SITE_FILES: &[&str] = &["mantle.toml"];

/// Stores the site's configuration in the target (at every start: a
/// restored site starts with the configuration it last ran with).
pub async fn upload_site_files(backup: &Backup) -> Result<usize> {
    let mut n = 0;
    for file in SITE_FILES {
        let path = backup.site().join(file);
        let Ok(contents) = std::fs::read(&path) else {
            continue;
        };
        let name = crate::canonical(&format!("{}/{file}", names::SITE_FILES));
        let sealed = backup.keys().seal(&name, &contents);
        backup.target().put(&name, sealed).await?;
        n += 1;
    }
    Ok(n)
}

/// Rebuilds a site in `dir` (empty or absent) from `target`: every store
/// at its latest state held, and the site's configuration. Stops at the
/// first store that cannot be restored.
pub async fn restore_site(
    target: &Target,
    keys: &Keyring,
    dir: &Path,
    mut progress: impl FnMut(&Restored),
) -> Result<Vec<Restored>> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| BackupError::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(BackupError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "not empty: a site is restored into an empty directory",
            ),
        ));
    }
    mantle_store::create_private_dir_all(dir).map_err(|e| BackupError::io(dir, e))?;
    let catalog = Catalog::read(target).await?;
    if catalog.stores.is_empty() {
        return Err(BackupError::NotRestorable {
            store: "the site".into(),
            moment: "its latest state".into(),
            reason: format!("{} holds no stores", target.name()),
        });
    }
    let mut out = Vec::new();
    for store in catalog.stores() {
        if Path::new(store)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(BackupError::corrupt(
                store,
                "a store path that leaves the site",
            ));
        }
        let restored = restore_store(target, keys, &catalog, store, None, &dir.join(store)).await?;
        progress(&restored);
        out.push(restored);
    }
    for file in SITE_FILES {
        let name = crate::canonical(&format!("{}/{file}", names::SITE_FILES));
        match target.get(&name).await {
            Ok(sealed) => {
                let contents = keys.open(&name, &sealed)?;
                let path = dir.join(file);
                std::fs::write(&path, contents).map_err(|e| BackupError::io(&path, e))?;
            }
            Err(BackupError::Target {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

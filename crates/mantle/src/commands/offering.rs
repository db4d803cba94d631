//! `mantle offering …` and `mantle product …`: what a site has installed
//! and who was given what, by the site's files or through its server.

use mantle_site::{OfferingInfo, OfferingState, ProductInfo};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::reach::{self, Reach};
use crate::Program;
use crate::cli::{OfferingCommand, ProductCommand};
use crate::error::CliError;

pub async fn run(program: &Program, cmd: OfferingCommand) -> Result<u8, CliError> {
    match cmd {
        OfferingCommand::List { dir, json } => {
            let offerings =
                reach::with_site(program, &dir, async |site| site.offerings().await).await?;
            if json {
                print_json(&offerings)?;
            } else {
                for o in offerings {
                    let state = match o.state {
                        OfferingState::Layer => "layer".to_string(),
                        OfferingState::Installed { installed_version } => {
                            format!("installed (v{installed_version})")
                        }
                        OfferingState::Available => "not installed".to_string(),
                        OfferingState::NotInProgram { installed_version } => format!(
                            "installed (v{installed_version}), not in this program: data kept"
                        ),
                    };
                    println!("{:<12} {:<28} {}", o.name, state, o.description);
                }
            }
        }
        OfferingCommand::Install { dir, name } => {
            let info =
                reach::with_site(program, &dir, async |site| site.install(&name).await).await?;
            println!("installed {} (v{})", info.name, info.version);
        }
        OfferingCommand::Uninstall {
            dir,
            name,
            purge,
            yes,
        } => {
            if purge
                && !yes
                && !super::confirm(
                    &format!(
                        "This deletes all data of the offering {name}, in every store. Type its name to confirm: "
                    ),
                    &name,
                )?
            {
                return Err(CliError::Message(
                    "not purged: confirm by typing the offering's name, or pass --yes".into(),
                ));
            }
            let deleted = reach::with_site(program, &dir, async |site| {
                site.uninstall(&name, purge).await
            })
            .await?;
            if purge {
                println!("uninstalled {name} and deleted its data ({deleted} items)");
            } else {
                println!("uninstalled {name} (its data is kept)");
            }
        }
    }
    Ok(0)
}

pub async fn run_product(program: &Program, cmd: ProductCommand) -> Result<u8, CliError> {
    match cmd {
        ProductCommand::Create {
            dir,
            name,
            offerings,
        } => {
            let p = reach::with_site(program, &dir, async |site| {
                site.create_product(&name, &offerings).await
            })
            .await?;
            println!("created product {} ({})", p.name, p.offerings.join(", "));
        }
        ProductCommand::List { dir, json } => {
            let products =
                reach::with_site(program, &dir, async |site| site.products().await).await?;
            if json {
                print_json(&products)?;
            } else {
                for p in products {
                    println!(
                        "{:<16} {:<40} held by {}",
                        p.name,
                        p.offerings.join(", "),
                        p.holders
                    );
                }
            }
        }
        ProductCommand::Delete { dir, name } => {
            reach::with_site(program, &dir, async |site| site.delete_product(&name).await).await?;
            println!("deleted product {name}");
        }
        ProductCommand::Grant { dir, name, login } => {
            let changed = reach::with_site(program, &dir, async |site| {
                site.grant(&name, &login, true).await
            })
            .await?;
            println!(
                "{login}: {} {name}",
                if changed { "granted" } else { "already holds" }
            );
        }
        ProductCommand::Revoke { dir, name, login } => {
            let changed = reach::with_site(program, &dir, async |site| {
                site.grant(&name, &login, false).await
            })
            .await?;
            println!(
                "{login}: {} {name}",
                if changed { "revoked" } else { "did not hold" }
            );
        }
    }
    Ok(0)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Message(format!("cannot encode: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `{"offerings": [...]}`
#[derive(Deserialize)]
struct Offerings {
    offerings: Vec<OfferingInfo>,
}

/// `{"products": [...]}`
#[derive(Deserialize)]
struct Products {
    products: Vec<ProductInfo>,
}

/// An answer with no content (204).
#[derive(Deserialize)]
struct Nothing {}

/// `{"deleted"}`
#[derive(Deserialize)]
struct Deleted {
    deleted: u64,
}

/// `{"changed"}`
#[derive(Deserialize)]
struct Changed {
    changed: bool,
}

impl Reach {
    /// Every offering and where it stands.
    pub async fn offerings(&self) -> Result<Vec<OfferingInfo>, CliError> {
        match self {
            Reach::Files(site) => Ok(site.offerings().list().await?),
            Reach::Server(r) => {
                let o: Offerings = r.call(Method::GET, &["offerings"], &[], None).await?;
                Ok(o.offerings)
            }
        }
    }

    /// Installs an offering.
    pub async fn install(&self, name: &str) -> Result<OfferingInfo, CliError> {
        match self {
            Reach::Files(site) => Ok(site.offerings().install(name).await?),
            Reach::Server(r) => {
                r.call(Method::POST, &["offerings", name, "install"], &[], None)
                    .await
            }
        }
    }

    /// Uninstalls an offering, keeping its data unless `purge` (then an
    /// offering already uninstalled is only purged); the items deleted.
    pub async fn uninstall(&self, name: &str, purge: bool) -> Result<u64, CliError> {
        match self {
            Reach::Files(site) => Ok(site.offerings().remove(name, purge).await?),
            Reach::Server(r) => {
                let query: &[(&str, &str)] = if purge { &[("purge", "true")] } else { &[] };
                let d: Deleted = r
                    .call(Method::POST, &["offerings", name, "uninstall"], query, None)
                    .await?;
                Ok(d.deleted)
            }
        }
    }

    /// Every product.
    pub async fn products(&self) -> Result<Vec<ProductInfo>, CliError> {
        match self {
            Reach::Files(site) => Ok(site.products().list().await?),
            Reach::Server(r) => {
                let p: Products = r.call(Method::GET, &["products"], &[], None).await?;
                Ok(p.products)
            }
        }
    }

    /// Makes a product.
    pub async fn create_product(
        &self,
        name: &str,
        offerings: &[String],
    ) -> Result<ProductInfo, CliError> {
        match self {
            Reach::Files(site) => {
                let names: Vec<&str> = offerings.iter().map(String::as_str).collect();
                Ok(site.products().create(name, &names).await?)
            }
            Reach::Server(r) => {
                let body = json!({ "name": name, "offerings": offerings });
                r.call(Method::POST, &["products"], &[], Some(body)).await
            }
        }
    }

    /// Deletes a product nobody holds.
    pub async fn delete_product(&self, name: &str) -> Result<(), CliError> {
        match self {
            Reach::Files(site) => Ok(site.products().delete(name).await?),
            Reach::Server(r) => {
                let _: Nothing = r
                    .call(Method::DELETE, &["products", name], &[], None)
                    .await?;
                Ok(())
            }
        }
    }

    /// Grants (`grant`) or revokes a product; whether anything changed.
    pub async fn grant(&self, product: &str, login: &str, grant: bool) -> Result<bool, CliError> {
        match self {
            Reach::Files(site) => {
                let account = site.accounts().get(login).await?;
                let products = site.products();
                Ok(if grant {
                    products.grant(product, account.id).await?
                } else {
                    products.revoke(product, account.id).await?
                })
            }
            Reach::Server(r) => {
                let action = if grant { "grant" } else { "revoke" };
                let c: Changed = r
                    .call(
                        Method::POST,
                        &["products", product, action],
                        &[],
                        Some(json!({ "login": login })),
                    )
                    .await?;
                Ok(c.changed)
            }
        }
    }
}

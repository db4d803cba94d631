//! Page templates (MiniJinja). The defaults are compiled in; a site can
//! override any of them with a file of the same name in its `templates/`
//! directory, which is read afresh at each render (edit, reload the page).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use minijinja::{Environment, Value};

const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("index.html", include_str!("../templates/index.html")),
    (
        "not_found.html",
        include_str!("../templates/not_found.html"),
    ),
    ("admin.html", include_str!("../templates/admin.html")),
    (
        "admin_account.html",
        include_str!("../templates/admin_account.html"),
    ),
    (
        "admin_invite.html",
        include_str!("../templates/admin_invite.html"),
    ),
    (
        "admin_style.html",
        include_str!("../templates/admin_style.html"),
    ),
    (
        "admin_macros.html",
        include_str!("../templates/admin_macros.html"),
    ),
];

/// The templates of a site.
pub struct Templates {
    overrides: PathBuf,
    embedded: Environment<'static>,
    /// Offerings' templates (see `WebOffering::template`), after ours.
    offered: Offered,
    /// When these templates were loaded (the embedded ones' date).
    loaded: SystemTime,
}

/// Templates that offerings brought: name → source.
type Offered = Arc<Vec<(String, &'static str)>>;

fn embedded(offered: &Offered, name: &str) -> Option<String> {
    EMBEDDED
        .iter()
        .map(|(n, t)| (*n, *t))
        .chain(offered.iter().map(|(n, t)| (n.as_str(), *t)))
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.to_string())
}

impl Templates {
    /// Templates with overrides from `overrides` (a directory that may not
    /// exist), and those offerings brought.
    pub fn new(overrides: PathBuf, offered: Vec<(String, &'static str)>) -> Self {
        let offered: Offered = Arc::new(offered);
        let mut env = Environment::new();
        let from = offered.clone();
        env.set_loader(move |name| Ok(embedded(&from, name)));
        add_filters(&mut env);
        Self {
            overrides,
            embedded: env,
            offered,
            loaded: SystemTime::now(),
        }
    }

    /// When the pages last changed, for `Last-Modified`: the override
    /// directory's newest file or the load time, whichever is later (a
    /// page may extend or include any template, so any file counts).
    pub fn modified(&self) -> SystemTime {
        std::fs::read_dir(&self.overrides)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
            .fold(self.loaded, SystemTime::max)
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        if self.overrides.is_dir() {
            let dir = self.overrides.clone();
            let offered = self.offered.clone();
            let mut env = Environment::new();
            add_filters(&mut env);
            env.set_loader(move |name| {
                // Names come from our handlers and `extends` tags; refuse
                // anything that could leave the directory.
                if name.contains("..") || name.starts_with('/') {
                    return Ok(None);
                }
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(text) => Ok(Some(text)),
                    Err(_) => Ok(embedded(&offered, name)),
                }
            });
            return env.get_template(name)?.render(ctx);
        }
        self.embedded.get_template(name)?.render(ctx)
    }
}

/// The filters every template may use:
///
/// - `protect_email`: an address shown on a public page without giving it
///   to harvesters: `alice@example.com` becomes `alice (at) example (dot)
///   com`, readable by people, not matched by address patterns.
fn add_filters(env: &mut Environment<'_>) {
    env.add_filter("protect_email", protect_email);
}

/// See [`add_filters`].
pub fn protect_email(address: &str) -> String {
    address.replace('@', " (at) ").replace('.', " (dot) ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_addresses_match_no_address_pattern() {
        let shown = protect_email("alice@mail.example.com");
        assert_eq!(shown, "alice (at) mail (dot) example (dot) com");
        assert!(!shown.contains('@'));
        let t = Templates::new(PathBuf::from("/nonexistent"), Vec::new());
        let mut env = Environment::new();
        add_filters(&mut env);
        let out = env
            .render_str(
                "{{ a|protect_email }}",
                minijinja::context! { a => "bob@x.org" },
            )
            .unwrap();
        assert_eq!(out, "bob (at) x (dot) org");
        assert!(t.modified() <= SystemTime::now());
    }
}

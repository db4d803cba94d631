//! Page templates (MiniJinja). The defaults are compiled in; a site can
//! override any of them with a file of the same name in its `templates/`
//! directory, which is read afresh at each render (edit, reload the page).

use std::path::PathBuf;

use minijinja::{Environment, Value};

const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("signup.html", include_str!("../templates/signup.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("index.html", include_str!("../templates/index.html")),
];

/// The templates of a site.
pub struct Templates {
    overrides: PathBuf,
    embedded: Environment<'static>,
}

fn embedded(name: &str) -> Option<String> {
    EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| (*t).to_string())
}

impl Templates {
    /// Templates with overrides from `overrides` (a directory that may not
    /// exist).
    pub fn new(overrides: PathBuf) -> Self {
        let mut env = Environment::new();
        env.set_loader(|name| Ok(embedded(name)));
        Self {
            overrides,
            embedded: env,
        }
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        if self.overrides.is_dir() {
            let dir = self.overrides.clone();
            let mut env = Environment::new();
            env.set_loader(move |name| {
                // Names come from our handlers and `extends` tags; refuse
                // anything that could leave the directory.
                if name.contains("..") || name.starts_with('/') {
                    return Ok(None);
                }
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(text) => Ok(Some(text)),
                    Err(_) => Ok(embedded(name)),
                }
            });
            return env.get_template(name)?.render(ctx);
        }
        self.embedded.get_template(name)?.render(ctx)
    }
}

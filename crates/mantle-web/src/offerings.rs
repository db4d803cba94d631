//! What the web front adds to offerings: their routes (present only while
//! the offering is installed), links on users' home pages, and the
//! [`Member`] extractor for pages that only users given the offering see.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mantle_site::{Avatar, Offering, Scope, Site};
use mantle_store::Store;

use crate::auth::Authenticated;
use crate::sharing::SharePages;
use crate::{ApiError, AppState, HttpConfig};

/// Makes an offering's routes.
type MakeRoutes = Arc<dyn Fn() -> Router<AppState> + Send + Sync>;

/// Routes that offerings (and layers) add to the HTTP front. Attached to
/// the site by [`WebOffering::routes`] (or, for routes that belong to no
/// offering, `SiteBuilder::extension::<WebRoutes>(|r| { r.add(routes); })`).
#[derive(Default)]
pub struct WebRoutes(Vec<(Option<String>, MakeRoutes)>);

impl WebRoutes {
    /// Adds routes that belong to no offering: always present.
    pub fn add(&mut self, routes: fn() -> Router<AppState>) -> &mut Self {
        self.0.push((None, Arc::new(routes)));
        self
    }

    /// Adds `offering`'s routes: present only while it is installed.
    pub fn add_for(
        &mut self,
        offering: &str,
        routes: impl Fn() -> Router<AppState> + Send + Sync + 'static,
    ) -> &mut Self {
        self.0.push((Some(offering.to_string()), Arc::new(routes)));
        self
    }

    /// Every route, each offering's behind its presence check.
    pub(crate) fn merged(&self, site: &Site) -> Router<AppState> {
        let mut all = Router::new();
        for (offering, make) in &self.0 {
            let routes = make();
            all = all.merge(match offering {
                None => routes,
                Some(name) => routes.route_layer(axum::middleware::from_fn_with_state(
                    (site.clone(), OfferingName(name.clone())),
                    only_if_installed,
                )),
            });
        }
        all
    }
}

/// The offering whose route a request reached (in its extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferingName(pub String);

/// Answers 404 unless the route's offering is installed; tells the
/// handler (and [`Member`]) whose route it is.
async fn only_if_installed(
    State((site, offering)): State<(Site, OfferingName)>,
    mut request: Request,
    next: Next,
) -> Response {
    if !site.offerings().is_installed(&offering.0) {
        return ApiError::new(StatusCode::NOT_FOUND, "not found").into_response();
    }
    request.extensions_mut().insert(offering);
    next.run(request).await
}

/// A link on the home page of users given an offering.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NavLink {
    /// The offering.
    pub offering: String,
    /// What the link says.
    pub label: String,
    /// Where it goes (a path on this site).
    pub path: String,
}

/// The links offerings put on users' home pages (see [`WebOffering::nav`]).
#[derive(Debug, Default)]
pub struct WebNav(pub Vec<NavLink>);

/// The logged-in user of a route of an offering they were given, with
/// their store: 401 without a login, 404 to a user not given the
/// offering (as if the page did not exist).
///
/// ```no_run
/// use axum::Json;
/// use mantle_web::Member;
///
/// async fn count(member: Member) -> Result<Json<u64>, mantle_web::ApiError> {
///     let n = member.store.read(|r| r.count_items("bookmarks_bookmark")).await?;
///     Ok(Json(n))
/// }
/// ```
pub struct Member {
    /// Who is logged in.
    pub avatar: Avatar,
    /// Their user store.
    pub store: Store,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(OfferingName(offering)) = parts.extensions.get::<OfferingName>().cloned() else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Member is only for routes added with WebOffering::routes",
            ));
        };
        let Authenticated(avatar) = Authenticated::from_request_parts(parts, state).await?;
        if !state
            .site
            .products()
            .holds(avatar.account, &offering)
            .await?
        {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not found"));
        }
        let store = state
            .site
            .stores()
            .user_store_unchecked(avatar.account)
            .await?;
        Ok(Member { avatar, store })
    }
}

/// Page templates offerings bring (see [`WebOffering::template`]).
#[derive(Debug, Default)]
pub struct WebTemplates(pub Vec<(String, &'static str)>);

/// Renders the page template `name` with `ctx`, as the site's own pages
/// are: it may extend `base.html` (the site's chrome) and use what every
/// page gets (`csrf` for forms, `site_domain`); a site overrides it with
/// a file of the same name in its `templates/` directory. 500 (logged)
/// if it does not render.
pub fn render_page(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    name: &str,
    ctx: minijinja::Value,
) -> Response {
    crate::pages::page(state, headers, StatusCode::OK, name, ctx)
}

/// Answers `GET` with a static file's bytes.
fn asset_route(path: &str, content_type: &'static str, bytes: &'static [u8]) -> Router<AppState> {
    Router::new().route(
        path,
        axum::routing::get(move || async move {
            (
                [
                    (axum::http::header::CONTENT_TYPE, content_type),
                    (axum::http::header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
        }),
    )
}

/// What the web front adds to an [`Offering`].
pub trait WebOffering {
    /// Adds HTTP routes, present only while the offering is installed
    /// (404 otherwise). Handlers that take a [`Member`] answer only users
    /// given the offering.
    fn routes(self, routes: impl Fn() -> Router<AppState> + Send + Sync + 'static) -> Self;

    /// Puts a link to `path` on the home page of users given the offering.
    fn nav(self, label: &str, path: &str) -> Self;

    /// Adds a page template, rendered with [`render_page`]: name it after
    /// the offering (`"bookmarks/list.html"`); it may
    /// `{% extends "base.html" %}`.
    fn template(self, name: &str, source: &'static str) -> Self;

    /// Serves a static file (a script, a style sheet) at `path`, while the
    /// offering is installed.
    fn asset(self, path: &str, content_type: &'static str, bytes: &'static [u8]) -> Self;

    /// Declares the page of shared items of type `T` (declared shareable
    /// with [`Offering::shareable`]): `GET /users/{login}/{share_id}`
    /// renders the page template `template` (added with
    /// [`template`](Self::template)) with [`render_page`], to whoever the
    /// owner's shares let read the item, while the offering is installed.
    /// Its context: `item` (the item as JSON), `share_id`, `access` (the
    /// access names the visitor holds), `owner` (the owner's login: print
    /// it only as `{{ owner|protect_email }}`), `revision`, and `user`
    /// (whether the visitor is logged in). Every refusal is the same 404
    /// page.
    ///
    /// ```
    /// # #[derive(mantle_store::Item, Clone, serde::Serialize, serde::Deserialize)]
    /// # #[item(name = "notes_note", version = 1)]
    /// # struct Note { text: String }
    /// use mantle_site::Offering;
    /// use mantle_web::WebOffering;
    ///
    /// let notes = Offering::new("notes", 1)
    ///     .shareable::<Note>()
    ///     .template(
    ///         "notes/shared.html",
    ///         r#"{% extends "base.html" %}{% block content %}
    /// <p>{{ item.text }}, by {{ owner|protect_email }}</p>{% endblock %}"#,
    ///     )
    ///     .share_page::<Note>("notes/shared.html")
    ///     .default_share("front");
    /// # let _ = notes;
    /// ```
    fn share_page<T: mantle_store::Item>(self, template: &str) -> Self;

    /// Declares `share_id` the offering's default share: `GET
    /// /users/{login}` shows that share of the owner, if the visitor may
    /// see it (the first such among the installed offerings that declare
    /// one, in the order they were declared; 404 if none).
    fn default_share(self, share_id: &str) -> Self;
}

impl WebOffering for Offering {
    fn routes(self, routes: impl Fn() -> Router<AppState> + Send + Sync + 'static) -> Self {
        let name = self.name().to_string();
        self.then(move |b| {
            b.extension::<WebRoutes>(|r| {
                r.add_for(&name, routes);
            })
        })
    }

    fn nav(self, label: &str, path: &str) -> Self {
        let link = NavLink {
            offering: self.name().to_string(),
            label: label.to_string(),
            path: path.to_string(),
        };
        self.then(move |b| b.extension::<WebNav>(|n| n.0.push(link)))
    }

    fn template(self, name: &str, source: &'static str) -> Self {
        let name = name.to_string();
        self.then(move |b| b.extension::<WebTemplates>(|t| t.0.push((name, source))))
    }

    fn asset(self, path: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let path = path.to_string();
        self.routes(move || asset_route(&path, content_type, bytes))
    }

    fn share_page<T: mantle_store::Item>(self, template: &str) -> Self {
        let (offering, template) = (self.name().to_string(), template.to_string());
        self.then(move |b| {
            b.extension::<SharePages>(|p| {
                p.page(&offering, T::TYPE_NAME, &template);
            })
        })
    }

    fn default_share(self, share_id: &str) -> Self {
        let (offering, share_id) = (self.name().to_string(), share_id.to_string());
        self.then(move |b| {
            b.extension::<SharePages>(|p| {
                p.default_share(&offering, &share_id);
            })
        })
    }
}

/// The web front as a layer of a program: the HTTP service's item type
/// and the `[http]` section.
pub fn offering() -> Offering {
    Offering::new(LAYER, 1)
        .layer()
        .description("The HTTP front: the JSON API, pages, administration, statistics")
        .items(Scope::Site, crate::register)
        .then(|b| b.section::<HttpConfig>())
}

/// The web layer's name, for offerings that require it.
pub const LAYER: &str = "web";

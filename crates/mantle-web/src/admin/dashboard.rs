//! The admin dashboard, `/admin`: server-rendered pages whose forms post
//! back (with the CSRF token) and redirect to the page they came from,
//! which shows the outcome once (a short-lived cookie carries it).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mantle_site::{AccountInfo, SiteError};
use mantle_stats::HtmlReport;
use mantle_store::Timestamp;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{AdminCaller, DashboardAdmin, stores};
use crate::auth::{cookie, set_cookie};
use crate::csrf::csrf_ok;
use crate::pages::{forbidden_form, page};
use crate::state::AppState;

/// Carries the outcome of a form to the page it redirects to.
const FLASH_COOKIE: &str = "mantle_admin_flash";
/// Stores shown on one page of the dashboard.
const STORES_PER_PAGE: usize = 50;

/// An outcome to show once.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Flash {
    /// `ok` or `error` (the CSS class).
    kind: &'static str,
    text: String,
}

impl Flash {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    fn error(e: SiteError) -> Self {
        Self {
            kind: "error",
            text: super::failed(e).message,
        }
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.kind, self.text))
    }

    fn decode(value: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let (kind, text) = text.split_once(':')?;
        let kind = ["ok", "error"].into_iter().find(|k| *k == kind)?;
        Some(Self {
            kind,
            text: text.to_string(),
        })
    }
}

/// A redirect to `to` that shows `flash` there.
fn redirect(state: &AppState, to: &str, flash: Flash) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            FLASH_COOKIE,
            &flash.encode(),
            60,
            state.secure_cookies(),
            true,
        ),
    );
    r
}

/// Renders a dashboard page, showing (and clearing) the pending outcome.
fn render(
    state: &AppState,
    headers: &HeaderMap,
    by: &AdminCaller,
    name: &str,
    ctx: minijinja::Value,
) -> Response {
    let flash = cookie(headers, FLASH_COOKIE).and_then(Flash::decode);
    let user = match by {
        AdminCaller::Account(me) => Some(me.address.clone()),
        AdminCaller::Operator => None,
    };
    let mut r = page(
        state,
        headers,
        StatusCode::OK,
        name,
        context! { flash => flash, user => user, by => by.to_string(), ..ctx },
    );
    if cookie(headers, FLASH_COOKIE).is_some() {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(FLASH_COOKIE, "", 0, state.secure_cookies(), true),
        );
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// A site error as a plain page (for reads the dashboard cannot do).
fn error_page(e: SiteError) -> Response {
    super::failed(e).into_response()
}

/// A time as the templates show it: to the minute, and in full for
/// `<time datetime>`.
#[derive(Serialize)]
struct When {
    iso: String,
    text: String,
}

impl From<Timestamp> for When {
    fn from(t: Timestamp) -> Self {
        let iso = t.to_string();
        let text = match iso.split_once('T') {
            Some((date, time)) => format!("{date} {} UTC", time.get(..5).unwrap_or(time)),
            None => iso.clone(),
        };
        Self { iso, text }
    }
}

/// An account as the templates show it.
#[derive(Serialize)]
struct AccountView {
    id: i64,
    primary: String,
    others: Vec<String>,
    disabled: bool,
    admin: bool,
    created: When,
    store: String,
}

impl From<AccountInfo> for AccountView {
    fn from(a: AccountInfo) -> Self {
        Self {
            id: a.id.raw(),
            others: a
                .logins
                .iter()
                .filter(|l| **l != a.primary)
                .cloned()
                .collect(),
            primary: a.primary,
            disabled: a.disabled,
            admin: a.admin,
            created: a.created.into(),
            store: a.store,
        }
    }
}

/// A byte count for people.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Query of `GET /admin`.
#[derive(Deserialize)]
pub struct OverviewParams {
    /// The first store shown.
    #[serde(default)]
    stores: usize,
}

/// `GET /admin`: accounts, parked messages, stores, what is installed,
/// statistics.
pub async fn overview(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    Query(params): Query<OverviewParams>,
    headers: HeaderMap,
) -> Response {
    let site = &state.site;
    let loaded = async {
        let accounts = site.accounts().list().await?;
        let parked = site.messaging().parked().await?;
        let (total, stores) = stores::list(site, params.stores, STORES_PER_PAGE).await?;
        let snapshot = site.stats_snapshot().await?;
        let site_file = site.dir().join(mantle_site::SITE_STORE);
        let installed = tokio::task::spawn_blocking(move || mantle_store::inspect(&site_file))
            .await
            .map_err(|e| SiteError::TaskFailed {
                what: "reading the site store",
                reason: e.to_string(),
            })??
            .powerups;
        Ok::<_, SiteError>((accounts, parked, total, stores, snapshot, installed))
    }
    .await;
    let (accounts, parked, total, stores, snapshot, installed) = match loaded {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let summary = context! {
        accounts => accounts.len(),
        disabled => accounts.iter().filter(|a| a.disabled).count(),
        admins => accounts.iter().filter(|a| a.admin).count(),
        parked => parked.len(),
        stores => total,
    };
    let stores: Vec<_> = stores
        .into_iter()
        .map(|s| {
            context! {
                size => size(s.bytes),
                upgrade => s.upgrade.to_string(),
                upgrade_state => match &s.upgrade {
                    stores::UpgradeState::Current => "current",
                    stores::UpgradeState::Pending { .. } => "pending",
                    stores::UpgradeState::Blocked { .. } => "blocked",
                    stores::UpgradeState::Unreadable { .. } => "unreadable",
                },
                types => s.types.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ..minijinja::Value::from_serialize(&s)
            }
        })
        .collect();
    let shown = params.stores.min(total);
    let pages = context! {
        first => shown + 1,
        last => (shown + STORES_PER_PAGE).min(total),
        previous => (shown > 0).then(|| shown.saturating_sub(STORES_PER_PAGE)),
        next => (shown + STORES_PER_PAGE < total).then_some(shown + STORES_PER_PAGE),
    };
    let statistics = HtmlReport::new().render_fragment(&snapshot);
    render(
        &state,
        &headers,
        &by,
        "admin.html",
        context! {
            summary => summary,
            accounts => accounts.into_iter().map(AccountView::from).collect::<Vec<_>>(),
            messages => parked,
            stores => stores,
            store_pages => pages,
            installed => installed,
            signup_policy => site.config().signup.policy.name(),
            statistics => minijinja::Value::from_safe_string(statistics),
        },
    )
}

/// `GET /admin/accounts/{id}`: one account, its tokens, its actions.
pub async fn account(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let site = &state.site;
    let info = match site.accounts().by_id(mantle_store::Id::from_raw(id)).await {
        Ok(i) => i,
        Err(e @ SiteError::NoSuchAccount(_)) => {
            return redirect(&state, "/admin#accounts", Flash::error(e));
        }
        Err(e) => return error_page(e),
    };
    let tokens = match site.auth().tokens(info.id).await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let tokens: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            context! {
                id => t.id,
                created => When::from(t.created),
                last_used => When::from(t.last_used),
                expires => When::from(t.expires),
                label => t.label,
            }
        })
        .collect();
    render(
        &state,
        &headers,
        &by,
        "admin_account.html",
        context! { account => AccountView::from(info), tokens => tokens },
    )
}

/// A dashboard form: the CSRF token and the form's own fields.
#[derive(Deserialize)]
pub struct Posted<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

/// The form's fields, if it is well-formed and carries this site's CSRF
/// token; else the answer to give.
fn posted<T>(
    headers: &HeaderMap,
    form: Result<Form<Posted<T>>, FormRejection>,
) -> Result<T, Box<Response>> {
    let Ok(Form(form)) = form else {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "malformed form").into_response(),
        ));
    };
    if !csrf_ok(headers, &form.csrf) {
        return Err(Box::new(forbidden_form()));
    }
    Ok(form.fields)
}

/// The fields of `POST /admin/accounts`.
#[derive(Deserialize)]
pub struct CreateForm {
    login: String,
    password: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    admin: Option<String>,
}

/// `POST /admin/accounts`: creates an account.
pub async fn create_account(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Posted<CreateForm>>, FormRejection>,
) -> Response {
    let form = match posted(&headers, form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    let admin = form.admin.is_some();
    match state
        .site
        .accounts()
        .create(&form.login, &form.password, admin)
        .await
    {
        Ok(info) => {
            tracing::info!(%by, login = %info.primary, admin, "admin: account created");
            let text = format!(
                "created {}{}",
                info.primary,
                if admin { " (admin)" } else { "" }
            );
            redirect(
                &state,
                &format!("/admin#account-{}", info.id.raw()),
                Flash::ok(text),
            )
        }
        Err(e) => redirect(&state, "/admin#create", Flash::error(e)),
    }
}

/// The fields of the account actions.
#[derive(Deserialize)]
pub struct ActionForm {
    /// `account`: go back to the account's page (else the dashboard).
    #[serde(default)]
    from: String,
    /// For `password`.
    #[serde(default)]
    password: String,
    /// For `delete`: the account's login, typed again.
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/accounts/{id}/{action}`: `disable`, `enable`, `password`
/// (sets it; revokes the tokens) or `delete` (keeps the user store; the
/// login must be typed again in `confirm`).
pub async fn account_action(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    form: Result<Form<Posted<ActionForm>>, FormRejection>,
) -> Response {
    if !["disable", "enable", "password", "delete"].contains(&action.as_str()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let form = match posted(&headers, form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    let site = &state.site;
    let back = if form.from == "account" {
        format!("/admin/accounts/{id}")
    } else {
        format!("/admin#account-{id}")
    };
    let info = match site.accounts().by_id(mantle_store::Id::from_raw(id)).await {
        Ok(i) => i,
        Err(e) => return redirect(&state, "/admin#accounts", Flash::error(e)),
    };
    let login = info.primary;
    let done = match action.as_str() {
        "disable" | "enable" => {
            let disabled = action == "disable";
            site.accounts()
                .set_disabled(&login, disabled)
                .await
                .map(|()| {
                    tracing::info!(%by, login, disabled, "admin: account switched");
                    format!("{login} {action}d")
                })
        }
        "password" => site
            .accounts()
            .set_password(&login, &form.password)
            .await
            .map(|()| {
                tracing::info!(%by, login, "admin: password set");
                format!("password changed for {login}; its tokens were revoked")
            }),
        _ if form.confirm.trim() != login => {
            return redirect(
                &state,
                &back,
                Flash {
                    kind: "error",
                    text: format!("not deleted: type {login} to confirm"),
                },
            );
        }
        _ => match site.accounts().delete(&login, false).await {
            Ok(file) => {
                tracing::info!(%by, login, "admin: account deleted");
                let text = format!(
                    "deleted {login}; its user store is kept at {}",
                    file.display()
                );
                return redirect(&state, "/admin#accounts", Flash::ok(text));
            }
            Err(e) => Err(e),
        },
    };
    match done {
        Ok(text) => redirect(&state, &back, Flash::ok(text)),
        Err(e) => redirect(&state, &back, Flash::error(e)),
    }
}

/// The fields of the forms that need nothing but the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {}

/// `POST /admin/accounts/{id}/tokens/{token}/revoke`.
pub async fn revoke_token(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    Path((id, token)): Path<(i64, i64)>,
    headers: HeaderMap,
    form: Result<Form<Posted<CsrfForm>>, FormRejection>,
) -> Response {
    if let Err(answer) = posted(&headers, form) {
        return *answer;
    }
    let back = format!("/admin/accounts/{id}");
    let account = mantle_store::Id::from_raw(id);
    match state.site.auth().revoke_token(account, token).await {
        Ok(true) => {
            tracing::info!(%by, account = id, token, "admin: token revoked");
            redirect(&state, &back, Flash::ok("token revoked"))
        }
        Ok(false) => redirect(
            &state,
            &back,
            Flash {
                kind: "error",
                text: "no such token (already revoked or expired)".into(),
            },
        ),
        Err(e) => redirect(&state, &back, Flash::error(e)),
    }
}

/// `POST /admin/invites`: makes an invite code and shows it (once: it is
/// not kept, only its hash).
pub async fn invite(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Posted<CsrfForm>>, FormRejection>,
) -> Response {
    if let Err(answer) = posted(&headers, form) {
        return *answer;
    }
    match state.site.accounts().create_invite().await {
        Ok(code) => {
            tracing::info!(%by, "admin: invite made");
            render(
                &state,
                &headers,
                &by,
                "admin_invite.html",
                context! {
                    code => code,
                    invite_policy => state.site.config().signup.policy == mantle_site::SignupPolicy::Invite,
                },
            )
        }
        Err(e) => redirect(&state, "/admin#accounts", Flash::error(e)),
    }
}

/// The fields of the parked message actions.
#[derive(Deserialize)]
pub struct MessageForm {
    id: String,
}

/// `POST /admin/messages/{retry|drop}`.
pub async fn message_action(
    DashboardAdmin(by): DashboardAdmin,
    State(state): State<AppState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Posted<MessageForm>>, FormRejection>,
) -> Response {
    if !["retry", "drop"].contains(&action.as_str()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let form = match posted(&headers, form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    let done = if action == "retry" {
        state
            .site
            .messaging()
            .retry(&form.id)
            .await
            .map(|()| format!("{}: back in line for delivery", form.id))
    } else {
        state
            .site
            .messaging()
            .discard(&form.id)
            .await
            .map(|()| format!("{}: dropped", form.id))
    };
    match done {
        Ok(text) => {
            tracing::info!(%by, id = form.id, action, "admin: parked message handled");
            redirect(&state, "/admin#messages", Flash::ok(text))
        }
        Err(e) => redirect(&state, "/admin#messages", Flash::error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_read_back_and_refuse_forgeries() {
        let f = Flash::ok("bob@localhost disabled: ok");
        assert_eq!(Flash::decode(&f.encode()), Some(f));
        let forged = URL_SAFE_NO_PAD.encode("script:alert(1)");
        assert_eq!(Flash::decode(&forged), None);
        assert_eq!(Flash::decode("%%%"), None);
    }

    #[test]
    fn times_to_the_minute() {
        let w = When::from(Timestamp::from_micros(1_700_000_000_123_456));
        assert_eq!(w.iso, "2023-11-14T22:13:20.123456Z");
        assert_eq!(w.text, "2023-11-14 22:13 UTC");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(4096), "4.0 KiB");
        assert_eq!(size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}

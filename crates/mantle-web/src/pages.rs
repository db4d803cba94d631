//! Server-rendered pages: index, login, logout, signup, and a home page per
//! user. Form posts are protected against cross-site request forgery (see
//! `csrf`).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use mantle_site::{SignupPolicy, SiteError};
use minijinja::context;
use serde::Deserialize;

use crate::auth::{MaybeAuthenticated, TOKEN_COOKIE, presented_token, set_cookie};
use crate::csrf::{csrf_ok, csrf_token};
use crate::state::AppState;

pub(crate) fn page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Response {
    let (csrf, set) = csrf_token(headers, state);
    let ctx = context! {
        csrf => csrf.clone(),
        site_domain => state.site.config().domain.clone(),
        signup_open => state.site.config().signup.policy != SignupPolicy::Admin,
        invite_needed => state.site.config().signup.policy == SignupPolicy::Invite,
        ..ctx
    };
    match state.templates.render(name, ctx) {
        Ok(html) => {
            let etag = crate::caching::page_etag(&html, &csrf);
            let mut r = (status, Html(html)).into_response();
            let h = r.headers_mut();
            h.insert(header::ETAG, etag);
            h.insert(
                header::LAST_MODIFIED,
                axum::http::HeaderValue::from_str(&httpdate::fmt_http_date(
                    state.templates.modified(),
                ))
                .expect("an HTTP date"),
            );
            if let Some(c) = set {
                h.append(header::SET_COOKIE, c);
            }
            r
        }
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
        }
    }
}

pub(crate) fn forbidden_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html("<p>This form has expired or did not come from this site. Go back, reload the page and try again.</p>"),
    )
        .into_response()
}

/// `GET /`: the index, or the user's home when logged in.
pub async fn index(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    headers: HeaderMap,
) -> Response {
    if me.is_some() {
        return Redirect::to("/home").into_response();
    }
    page(&state, &headers, StatusCode::OK, "index.html", context! {})
}

/// `GET /login`.
pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        &state,
        &headers,
        StatusCode::OK,
        "login.html",
        context! { username => "" },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    invite: Option<String>,
}

/// The checks every credentials form gets: well-formed and carrying this
/// site's CSRF token. (The attempt allowance is the site's: see
/// `Auth::login_from` and `Auth::count_attempt`.)
fn credentials_form(
    headers: &HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<LoginForm, Box<Response>> {
    let Ok(Form(form)) = form else {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "malformed form").into_response(),
        ));
    };
    if !csrf_ok(headers, &form.csrf) {
        return Err(Box::new(forbidden_form()));
    }
    Ok(form)
}

/// `POST /login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match credentials_form(&headers, form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    match state
        .site
        .auth()
        .login_from(Some(peer.ip()), &form.username, &form.password, "web login")
        .await
    {
        Ok(issued) => logged_in(&state, &issued.token),
        Err(e) => form_error(&state, &headers, "login.html", &form.username, e),
    }
}

fn logged_in(state: &AppState, token: &str) -> Response {
    let max_age = state.site.config().token_ttl().as_secs() as i64;
    let mut r = Redirect::to("/home").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(TOKEN_COOKIE, token, max_age, state.secure_cookies(), true),
    );
    r
}

fn form_error(
    state: &AppState,
    headers: &HeaderMap,
    template: &str,
    username: &str,
    e: SiteError,
) -> Response {
    let api: crate::error::ApiError = e.into();
    let mut r = page(
        state,
        headers,
        api.status,
        template,
        context! { error => api.message, username => username },
    );
    if let Some(s) = api.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(s.max(1)));
    }
    r
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: revokes the cookie's token.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return (StatusCode::BAD_REQUEST, "malformed form").into_response();
    };
    if !csrf_ok(&headers, &form.csrf) {
        return forbidden_form();
    }
    if let Some(token) = presented_token(&headers)
        && let Err(e) = state.site.auth().logout(token).await
    {
        return crate::error::ApiError::from(e).into_response();
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(TOKEN_COOKIE, "", 0, state.secure_cookies(), true),
    );
    r
}

/// `GET /signup`.
pub async fn signup_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        &state,
        &headers,
        StatusCode::OK,
        "signup.html",
        context! { username => "" },
    )
}

/// `POST /signup`: creates the account and logs in.
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match credentials_form(&headers, form) {
        Ok(f) => f,
        Err(answer) => return *answer,
    };
    let created = match state.site.auth().count_attempt(peer.ip()) {
        Ok(()) => {
            state
                .site
                .accounts()
                .signup(&form.username, &form.password, form.invite.as_deref())
                .await
        }
        Err(e) => Err(e),
    };
    let result = match created {
        Ok(info) => state.site.auth().issue_token(info.id, "web signup").await,
        Err(e) => Err(e),
    };
    match result {
        Ok(issued) => logged_in(&state, &issued.token),
        Err(e) => form_error(&state, &headers, "signup.html", &form.username, e),
    }
}

/// `GET /home`: the user's home page.
pub async fn home(
    State(state): State<AppState>,
    MaybeAuthenticated(me): MaybeAuthenticated,
    headers: HeaderMap,
) -> Response {
    let Some(me) = me else {
        return Redirect::to("/login").into_response();
    };
    let loaded = async {
        let info = state.site.accounts().by_id(me.account).await?;
        let slates = state.site.slates().names(me.account).await?;
        let tokens = state.site.auth().tokens(me.account).await?;
        let given = state.site.products().given(me.account).await?;
        Ok::<_, SiteError>((info, slates, tokens, given))
    }
    .await;
    match loaded {
        Ok((info, slates, tokens, given)) => {
            // The applications the user was given that have a page.
            let apps: Vec<crate::NavLink> = state
                .site
                .extension::<crate::WebNav>()
                .map(|nav| {
                    nav.0
                        .iter()
                        .filter(|l| given.contains(&l.offering))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let tokens: Vec<_> = tokens
                .into_iter()
                .map(|t| {
                    context! {
                        created => t.created.to_string(),
                        last_used => t.last_used.to_string(),
                        expires => t.expires.to_string(),
                        label => t.label,
                    }
                })
                .collect();
            page(
                &state,
                &headers,
                StatusCode::OK,
                "home.html",
                context! { user => info, apps => apps, slates => slates, tokens => tokens },
            )
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// `GET /robots.txt`: crawlers may index the public pages, not the API,
/// users' pages, the live endpoint or the statistics.
pub async fn robots() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "User-agent: *\nDisallow: /api/\nDisallow: /home\nDisallow: /admin\nDisallow: /live\nDisallow: /stats\nDisallow: /metrics\n",
    )
}

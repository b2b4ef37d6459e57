//! The Microsoft identity platform v2.0: authorization URLs with PKCE, code redemption and
//! refresh-token grants through the `oauth2` crate, and the classification of its errors.

use std::time::Duration;

use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicErrorResponseType},
};
use secrecy::{ExposeSecret, SecretString};

use crate::graph::http;

/// An Azure application: who the identity platform issues tokens to.
#[derive(Clone, Debug)]
pub struct Application {
    /// Application (client) ID.
    pub client_id: String,
    /// Directory (tenant).
    pub tenant: String,
    /// Client secret.
    pub client_secret: SecretString,
}

/// Scopes requested on connect: sign-in, a refresh token, the profile, calendars and tasks.
pub const SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "offline_access",
    "User.Read",
    "Calendars.ReadWrite",
    "Tasks.ReadWrite",
];

/// Tokens from a successful grant.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token for Graph.
    pub access_token: SecretString,
    /// The (rotated) refresh token.
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token.
    pub expires_in: Duration,
    /// Scopes granted.
    pub scopes: Vec<String>,
}

/// How a grant failed, in the terms the service acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The grant (code or refresh token) is no longer valid: the user must connect again.
    #[error("{description}")]
    InvalidGrant {
        /// OAuth error code (`invalid_grant`, `interaction_required`...).
        error: String,
        /// AADSTS code, when Microsoft gave one.
        aadsts: Option<String>,
        /// First line of Microsoft's description.
        description: String,
    },
    /// The application's credentials are wrong or expired: an administrator must fix them.
    #[error("{description}")]
    InvalidClient {
        /// OAuth error code (`invalid_client`, `unauthorized_client`).
        error: String,
        /// AADSTS code, when Microsoft gave one.
        aadsts: Option<String>,
        /// First line of Microsoft's description.
        description: String,
    },
    /// Worth retrying: Microsoft was unavailable, or the network failed.
    #[error("{description}")]
    Transient {
        /// What failed.
        description: String,
    },
    /// The request was refused for another reason (bad request, bad scope...).
    #[error("{description}")]
    Rejected {
        /// OAuth error code.
        error: String,
        /// AADSTS code, when Microsoft gave one.
        aadsts: Option<String>,
        /// First line of Microsoft's description.
        description: String,
    },
}

impl IdentityError {
    /// The AADSTS code of the failure, if any.
    pub fn aadsts(&self) -> Option<&str> {
        match self {
            Self::InvalidGrant { aadsts, .. }
            | Self::InvalidClient { aadsts, .. }
            | Self::Rejected { aadsts, .. } => aadsts.as_deref(),
            Self::Transient { .. } => None,
        }
    }
}

/// `AADSTS70008: The refresh token...\r\nTrace ID: ...` → (`70008`, `AADSTS70008: The refresh
/// token...`).
fn parse_description(description: Option<&str>) -> (Option<String>, String) {
    let text = description
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let aadsts = text
        .strip_prefix("AADSTS")
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|code| !code.is_empty());
    (aadsts, text)
}

fn classify<E: std::error::Error>(
    err: RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> IdentityError {
    match err {
        RequestTokenError::ServerResponse(response) => {
            let (aadsts, description) =
                parse_description(response.error_description().map(String::as_str));
            let error = response.error().as_ref().to_owned();
            let description = if description.is_empty() {
                error.clone()
            } else {
                description
            };
            match response.error() {
                BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidScope => {
                    IdentityError::InvalidGrant {
                        error,
                        aadsts,
                        description,
                    }
                }
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => IdentityError::InvalidClient {
                    error,
                    aadsts,
                    description,
                },
                BasicErrorResponseType::Extension(code)
                    if matches!(code.as_str(), "temporarily_unavailable" | "server_error") =>
                {
                    IdentityError::Transient { description }
                }
                BasicErrorResponseType::Extension(code)
                    if matches!(
                        code.as_str(),
                        "interaction_required" | "consent_required" | "login_required"
                    ) =>
                {
                    IdentityError::InvalidGrant {
                        error,
                        aadsts,
                        description,
                    }
                }
                _ => IdentityError::Rejected {
                    error,
                    aadsts,
                    description,
                },
            }
        }
        // Transport failures, and answers that are not a token or an OAuth error (an HTML 503
        // from a gateway, a truncated body): transient.
        RequestTokenError::Request(e) => IdentityError::Transient {
            description: format!("the token endpoint could not be reached: {e}"),
        },
        RequestTokenError::Parse(_, _) => IdentityError::Transient {
            description: "the token endpoint answered with something other than a token".to_owned(),
        },
        RequestTokenError::Other(message) => IdentityError::Transient {
            description: message,
        },
    }
}

/// Client of the identity platform at a base URL.
#[derive(Clone, Debug)]
pub struct Identity {
    http: reqwest::Client,
    base_url: String,
}

type ConfiguredClient = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl Identity {
    /// A client of the identity platform at `base_url` (e.g. `https://login.microsoftonline.com`).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn oauth_client(
        &self,
        app: &Application,
        redirect_uri: &str,
    ) -> anyhow::Result<ConfiguredClient> {
        let tenant = &app.tenant;
        Ok(BasicClient::new(ClientId::new(app.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                app.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(format!(
                "{}/{tenant}/oauth2/v2.0/authorize",
                self.base_url
            ))?)
            .set_token_uri(TokenUrl::new(format!(
                "{}/{tenant}/oauth2/v2.0/token",
                self.base_url
            ))?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned())?)
            // Microsoft documents the secret in the form body.
            .set_auth_type(AuthType::RequestBody))
    }

    /// The URL that opens Microsoft's sign-in for `app`, with `state` and the PKCE S256
    /// challenge of `verifier`.
    ///
    /// # Errors
    /// When the configured URLs do not parse.
    pub fn authorization_url(
        &self,
        app: &Application,
        redirect_uri: &str,
        state: &str,
        verifier: &str,
        login_hint: Option<&str>,
    ) -> anyhow::Result<String> {
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            verifier.to_owned(),
        ));
        let state = state.to_owned();
        let client = self.oauth_client(app, redirect_uri)?;
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge)
            .add_extra_param("response_mode", "query")
            .add_extra_param("prompt", "select_account");
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        Ok(request.url().0.to_string())
    }

    /// Redeems an authorization code with its PKCE verifier.
    ///
    /// # Errors
    /// Classified as [`IdentityError`].
    pub async fn redeem_code(
        &self,
        app: &Application,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> Result<TokenSet, IdentityError> {
        let client = self
            .oauth_client(app, redirect_uri)
            .map_err(|e| IdentityError::Rejected {
                error: "invalid_configuration".to_owned(),
                aadsts: None,
                description: e.to_string(),
            })?;
        let send = |request| http::send(self.http.clone(), request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&send)
            .await
            .map_err(classify)?;
        Ok(token_set(&response))
    }

    /// Exchanges a refresh token for new tokens (Microsoft rotates the refresh token).
    ///
    /// # Errors
    /// Classified as [`IdentityError`].
    pub async fn refresh(
        &self,
        app: &Application,
        redirect_uri: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, IdentityError> {
        let client = self
            .oauth_client(app, redirect_uri)
            .map_err(|e| IdentityError::Rejected {
                error: "invalid_configuration".to_owned(),
                aadsts: None,
                description: e.to_string(),
            })?;
        let send = |request| http::send(self.http.clone(), request);
        let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let response = client
            .exchange_refresh_token(&token)
            .add_scopes(
                SCOPES
                    .iter()
                    .filter(|s| **s != "openid" && **s != "profile")
                    .map(|s| Scope::new((*s).to_owned())),
            )
            .request_async(&send)
            .await
            .map_err(classify)?;
        Ok(token_set(&response))
    }
}

fn token_set(response: &oauth2::basic::BasicTokenResponse) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        // Microsoft always sends expires_in; assume its documented minimum when absent.
        expires_in: response.expires_in().unwrap_or(Duration::from_secs(3599)),
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_description;

    #[test]
    fn aadsts_codes_come_from_the_description() {
        let (code, text) = parse_description(Some(
            "AADSTS70008: The provided authorization code or refresh token has expired.\r\nTrace ID: x",
        ));
        assert_eq!(code.as_deref(), Some("70008"));
        assert_eq!(
            text,
            "AADSTS70008: The provided authorization code or refresh token has expired."
        );
        assert_eq!(parse_description(Some("something else")).0, None);
        assert_eq!(parse_description(None).1, "");
    }
}

//! Any OAuth2 provider with a JSON user-info endpoint: the id is its `sub` (or `id`).

use super::code_flow::{CodeFlow, CodeProvider, Grant};
use super::{Identity, ProviderError};

pub struct OAuth2(pub CodeFlow);

impl CodeProvider for OAuth2 {
    fn flow(&self) -> &CodeFlow {
        &self.0
    }

    async fn user(&self, grant: Grant<'_>) -> Result<Identity, ProviderError> {
        let url = grant.endpoints.user_info()?;
        self.0.user_info(&grant, url, &["sub", "id"]).await
    }
}

//! Facebook's Graph API: the fields wanted must be named with `fields=`, and the address it
//! returns is one Facebook confirmed (hence the preset's `email_verified`).

use super::code_flow::{CodeFlow, CodeProvider, Grant};
use super::{Identity, ProviderError};

pub struct Facebook(pub CodeFlow);

impl CodeProvider for Facebook {
    fn flow(&self) -> &CodeFlow {
        &self.0
    }

    async fn user(&self, grant: Grant<'_>) -> Result<Identity, ProviderError> {
        let mut url = grant.endpoints.user_info()?.clone();
        if !url.query_pairs().any(|(k, _)| k == "fields") {
            let fields: Vec<&str> = std::iter::once("id")
                .chain(self.0.config.user_info_fields.iter().map(String::as_str))
                .collect();
            url.query_pairs_mut()
                .append_pair("fields", &fields.join(","));
        }
        self.0.user_info(&grant, &url, &["id"]).await
    }
}

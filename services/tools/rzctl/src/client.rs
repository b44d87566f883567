//! The registration gRPC client the seed and the landscape use.

use std::fmt::Display;

use rz_proto::registration::v1::registration_service_client::RegistrationServiceClient;
use tonic::transport::Channel;

pub type Client = RegistrationServiceClient<Channel>;

pub async fn connect(endpoint: &str) -> Result<Client, String> {
    RegistrationServiceClient::connect(endpoint.to_owned())
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))
}

/// Turns a refused call into a message naming the call.
pub fn failed(what: impl Display) -> impl FnOnce(tonic::Status) -> String {
    move |s| format!("{what}: {:?}: {}", s.code(), s.message())
}

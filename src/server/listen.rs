//! Binding the API's listener, its failure a typed [`ServerError::Bind`]
//! naming the address.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::ServerError;

/// A listener on `address` (`server.listen`), for [`super::Server::run`].
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { address, source })
}

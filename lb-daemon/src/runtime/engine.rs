//! What the Docker and Swarm runtimes share about the engine: connecting to it, checking
//! an image, making sure of a network, reading its errors.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptionsBuilder;

use super::docker::OWNER_LABEL;

use super::RuntimeError;

/// The engine at `DOCKER_HOST`, else `/var/run/docker.sock` (not yet asked anything).
///
/// # Errors
/// [`RuntimeError::EngineUnreachable`] when the address is unusable.
pub(super) fn connect() -> Result<Docker, RuntimeError> {
    Docker::connect_with_defaults().map_err(|e| RuntimeError::EngineUnreachable(e.to_string()))
}

/// Turns an engine error met while doing `what` into a [`RuntimeError::Engine`].
pub(super) fn error(what: impl Into<String>) -> impl FnOnce(BollardError) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::Engine {
        what,
        message: e.to_string(),
    }
}

/// The HTTP status of an engine error that has one (404 missing, 409 conflict, ...).
pub(super) fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// `Ok` when the engine has `image`.
///
/// # Errors
/// [`RuntimeError::ImageMissing`], or the engine's error.
pub(super) async fn check_image(docker: &Docker, image: &str) -> Result<(), RuntimeError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Err(RuntimeError::ImageMissing(image.to_string())),
        Err(e) => Err(error(format!("image {image}"))(e)),
    }
}

/// Makes sure network `name` exists and returns its ID: creates it with `driver`
/// (`bridge`, or an attachable `overlay`) and the owner label `owner` when missing.
/// The engine lets two networks have one name, so daemons starting at the same moment
/// may each create one: all of them then take the oldest, and each removes its own
/// newer copy.
///
/// # Errors
/// The engine's error listing or creating it.
pub(super) async fn ensure_network(
    docker: &Docker,
    name: &str,
    driver: &str,
    owner: &str,
) -> Result<String, RuntimeError> {
    if let Some(id) = oldest_network(docker, name).await? {
        return Ok(id);
    }
    let created = docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(driver.to_string()),
            attachable: Some(driver == "overlay"),
            labels: Some(HashMap::from([(
                OWNER_LABEL.to_string(),
                owner.to_string(),
            )])),
            ..Default::default()
        })
        .await;
    let mine = match created {
        Ok(response) => Some(response.id),
        Err(e) => {
            tracing::warn!(network = name, error = %e, "creating the network failed; another daemon may have");
            None
        }
    };
    let Some(id) = oldest_network(docker, name).await? else {
        return Err(RuntimeError::Engine {
            what: format!("creating network {name}"),
            message: "it was not created".to_string(),
        });
    };
    match mine {
        Some(mine) if mine != id => {
            let _ = docker.remove_network(&mine).await;
        }
        Some(_) => tracing::info!(network = name, driver, "created Docker network"),
        None => {}
    }
    Ok(id)
}

/// The ID of the oldest network named exactly `name` (ties: the smallest ID).
async fn oldest_network(docker: &Docker, name: &str) -> Result<Option<String>, RuntimeError> {
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(error(format!("listing networks named {name}")))?;
    Ok(networks
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| Some((n.created.map(|c| c.to_string()).unwrap_or_default(), n.id?)))
        .min()
        .map(|(_, id)| id))
}

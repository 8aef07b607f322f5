//! What the Docker and Swarm runtimes share about the engine: connecting to it, checking
//! an image, making sure of a network, reading its errors.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::InspectNetworkOptions;

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

/// Makes sure network `name` exists: creates it with `driver` (`bridge`, or an
/// attachable `overlay`) and the owner label `owner` when missing; an existing one is
/// used as it is.
///
/// # Errors
/// The engine's error inspecting or creating it.
pub(super) async fn ensure_network(
    docker: &Docker,
    name: &str,
    driver: &str,
    owner: &str,
) -> Result<(), RuntimeError> {
    let Err(e) = docker
        .inspect_network(name, None::<InspectNetworkOptions>)
        .await
    else {
        return Ok(());
    };
    if status_of(&e) != Some(404) {
        return Err(error(format!("network {name}"))(e));
    }
    docker
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
        .await
        .map_err(error(format!("creating network {name}")))?;
    tracing::info!(network = name, driver, "created Docker network");
    Ok(())
}

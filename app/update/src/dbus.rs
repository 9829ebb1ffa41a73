//! [`Rauc`] over D-Bus with zbus (docs/decisions/0009-rauc-dbus.md).
//!
//! One connection to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` when set, as GLib and RAUC
//! read it, or an address given explicitly) and one proxy of `de.pengutronix.rauc` at `/`.
//! Properties are read fresh (the proxy caches nothing), so a value is never older than the
//! call. A method error carries RAUC's message; a RAUC that is not on the bus is a
//! [`RaucError::Call`] naming the method, and the caller decides what that means.

use std::collections::HashMap;
use std::path::PathBuf;

use futures::StreamExt;
use futures::stream::BoxStream;
use zbus::zvariant::{OwnedValue, Value};

use crate::rauc::{
    BoxFut, BundleInfo, InstallArgs, MarkState, Marked, Progress, Rauc, RaucError, RaucEvent,
    SlotRef, SlotStatus,
};

#[zbus::proxy(
    interface = "de.pengutronix.rauc.Installer",
    default_service = "de.pengutronix.rauc",
    default_path = "/"
)]
trait Installer {
    fn install_bundle(&self, source: &str, args: HashMap<&str, Value<'_>>) -> zbus::Result<()>;
    fn info(&self, bundle: &str) -> zbus::Result<(String, String)>;
    fn mark(&self, state: &str, slot_identifier: &str) -> zbus::Result<(String, String)>;
    fn get_slot_status(&self) -> zbus::Result<Vec<(String, HashMap<String, OwnedValue>)>>;
    fn get_primary(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn operation(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_error(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn progress(&self) -> zbus::Result<(i32, String, i32)>;
    #[zbus(property)]
    fn compatible(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn boot_slot(&self) -> zbus::Result<String>;
    #[zbus(signal)]
    fn completed(&self, result: i32) -> zbus::Result<()>;
}

/// The real RAUC, on the system bus.
#[derive(Debug, Clone)]
pub struct DbusRauc {
    proxy: InstallerProxy<'static>,
}

fn message(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(text), _) => format!("{text} ({name})"),
        zbus::Error::MethodError(name, None, _) => name.to_string(),
        zbus::Error::FDO(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// A method's error: RAUC's own (`Refused`) or the bus's (`Call`: not running, no answer).
fn call(method: &'static str) -> impl Fn(zbus::Error) -> RaucError {
    move |e| match &e {
        zbus::Error::MethodError(name, _, _)
            if !name.as_str().starts_with("org.freedesktop.DBus.Error.") =>
        {
            RaucError::Refused {
                method,
                message: message(e),
            }
        }
        _ => RaucError::Call {
            method,
            message: message(e),
        },
    }
}

impl DbusRauc {
    /// Connects to `address`, or to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the
    /// standard socket) when `None`.
    pub async fn connect(address: Option<&str>) -> Result<DbusRauc, RaucError> {
        let err = |e: zbus::Error| RaucError::Connect {
            address: address.map(str::to_string),
            message: message(e),
        };
        let conn = match address {
            Some(a) => zbus::connection::Builder::address(a)
                .map_err(err)?
                .build()
                .await
                .map_err(err)?,
            None => zbus::Connection::system().await.map_err(err)?,
        };
        let proxy = InstallerProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(err)?;
        Ok(DbusRauc { proxy })
    }
}

fn text(fields: &HashMap<String, OwnedValue>, key: &str) -> Option<String> {
    let v = fields.get(key)?;
    match &**v {
        Value::Str(s) => Some(s.to_string()),
        Value::U64(n) => Some(n.to_string()),
        Value::U32(n) => Some(n.to_string()),
        Value::I32(n) => Some(n.to_string()),
        _ => None,
    }
}

fn slot(name: String, fields: HashMap<String, OwnedValue>) -> SlotStatus {
    SlotStatus {
        name,
        class: text(&fields, "class").unwrap_or_default(),
        bootname: text(&fields, "bootname"),
        state: text(&fields, "state"),
        boot_status: text(&fields, "boot-status"),
        device: text(&fields, "device"),
        bundle_version: text(&fields, "bundle.version"),
        installed_timestamp: text(&fields, "installed.timestamp"),
    }
}

impl Rauc for DbusRauc {
    fn install_bundle(
        &self,
        source: PathBuf,
        args: InstallArgs,
    ) -> BoxFut<'_, Result<(), RaucError>> {
        Box::pin(async move {
            let mut a: HashMap<&str, Value<'_>> = HashMap::new();
            if args.ignore_compatible {
                a.insert("ignore-compatible", Value::Bool(true));
            }
            self.proxy
                .install_bundle(&source.to_string_lossy(), a)
                .await
                .map_err(call("InstallBundle"))
        })
    }

    fn info(&self, bundle: PathBuf) -> BoxFut<'_, Result<BundleInfo, RaucError>> {
        Box::pin(async move {
            let (compatible, version) = self
                .proxy
                .info(&bundle.to_string_lossy())
                .await
                .map_err(call("Info"))?;
            Ok(BundleInfo {
                compatible,
                version,
            })
        })
    }

    fn mark(&self, state: MarkState, slot: SlotRef) -> BoxFut<'_, Result<Marked, RaucError>> {
        Box::pin(async move {
            let (slot, message_text) = self
                .proxy
                .mark(state.as_str(), slot.as_str())
                .await
                .map_err(call("Mark"))?;
            Ok(Marked {
                slot,
                message: message_text,
            })
        })
    }

    fn slot_status(&self) -> BoxFut<'_, Result<Vec<SlotStatus>, RaucError>> {
        Box::pin(async move {
            let slots = self
                .proxy
                .get_slot_status()
                .await
                .map_err(call("GetSlotStatus"))?;
            let mut out: Vec<SlotStatus> = slots.into_iter().map(|(n, f)| slot(n, f)).collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn primary(&self) -> BoxFut<'_, Result<String, RaucError>> {
        Box::pin(async move { self.proxy.get_primary().await.map_err(call("GetPrimary")) })
    }

    fn operation(&self) -> BoxFut<'_, Result<String, RaucError>> {
        Box::pin(async move {
            self.proxy
                .operation()
                .await
                .map_err(|e| RaucError::Property {
                    property: "Operation",
                    message: message(e),
                })
        })
    }

    fn last_error(&self) -> BoxFut<'_, Result<String, RaucError>> {
        Box::pin(async move {
            self.proxy
                .last_error()
                .await
                .map_err(|e| RaucError::Property {
                    property: "LastError",
                    message: message(e),
                })
        })
    }

    fn progress(&self) -> BoxFut<'_, Result<Progress, RaucError>> {
        Box::pin(async move {
            let (percent, message_text, depth) =
                self.proxy
                    .progress()
                    .await
                    .map_err(|e| RaucError::Property {
                        property: "Progress",
                        message: message(e),
                    })?;
            Ok(Progress {
                percent,
                message: message_text,
                depth,
            })
        })
    }

    fn compatible(&self) -> BoxFut<'_, Result<String, RaucError>> {
        Box::pin(async move {
            self.proxy
                .compatible()
                .await
                .map_err(|e| RaucError::Property {
                    property: "Compatible",
                    message: message(e),
                })
        })
    }

    fn boot_slot(&self) -> BoxFut<'_, Result<String, RaucError>> {
        Box::pin(async move {
            self.proxy
                .boot_slot()
                .await
                .map_err(|e| RaucError::Property {
                    property: "BootSlot",
                    message: message(e),
                })
        })
    }

    fn events(&self) -> BoxFut<'_, Result<BoxStream<'static, RaucEvent>, RaucError>> {
        Box::pin(async move {
            let err = |e: zbus::Error| RaucError::Subscribe {
                message: message(e),
            };
            let completed = self
                .proxy
                .receive_completed()
                .await
                .map_err(err)?
                .filter_map(
                    |s| async move { s.args().ok().map(|a| RaucEvent::Completed(a.result)) },
                );
            // PropertiesChanged carries the new values; RAUC sends them with each change.
            let props = zbus::fdo::PropertiesProxy::builder(self.proxy.inner().connection())
                .destination("de.pengutronix.rauc")
                .map_err(err)?
                .path("/")
                .map_err(err)?
                .build()
                .await
                .map_err(err)?;
            let properties = props
                .receive_properties_changed()
                .await
                .map_err(err)?
                .flat_map(|s| {
                    let events: Vec<RaucEvent> = match s.args() {
                        Ok(a) if a.interface_name.as_str() == "de.pengutronix.rauc.Installer" => a
                            .changed_properties
                            .iter()
                            .filter_map(|(k, v)| property_event(k, v))
                            .collect(),
                        _ => Vec::new(),
                    };
                    futures::stream::iter(events)
                });
            Ok(futures::stream::select(completed, properties).boxed())
        })
    }
}

fn property_event(name: &str, v: &Value<'_>) -> Option<RaucEvent> {
    match name {
        "Operation" => String::try_from(v.try_clone().ok()?)
            .ok()
            .map(RaucEvent::Operation),
        "LastError" => String::try_from(v.try_clone().ok()?)
            .ok()
            .map(RaucEvent::LastError),
        "Progress" => {
            let (percent, message, depth) =
                <(i32, String, i32)>::try_from(v.try_clone().ok()?).ok()?;
            Some(RaucEvent::Progress(Progress {
                percent,
                message,
                depth,
            }))
        }
        _ => None,
    }
}

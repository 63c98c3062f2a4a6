//! Logging, through the `tracing` crate: one line per event on stderr,
//! prefixed `wfs-manager[HOST]: `.
//!
//! Which events are shown is an environment filter read from `WFS_LOG`
//! (`tracing_subscriber`'s `EnvFilter` syntax: `WFS_LOG=debug`,
//! `WFS_LOG=wfs_manager::engine=trace`, ...; `info` by default).
//! `WFS_TRACE=1` adds a `trace` directive for the engine (the target
//! `wfs_manager::engine` and its modules), whose trace events are every
//! input and output of the page protocol's core, with the `file`, `page`
//! and `txn` they concern as fields.
//!
//! The engine handles each input of the core inside a span, its
//! transaction: `txn`, at debug level, with the input's `file`, `page` and
//! `txn` (those it has). A debug or trace line logged inside spans ends
//! with their fields (the layer `KeepSpanFields` keeps them), innermost span
//! first, after the event's own and without a field the event (or an
//! inner span) already has: so `grep txn=0x...` finds every debug and
//! trace line of a transaction, on every host, those of outputs naming no
//! transaction (the kernel's `Grant`) too. Info, warning and error lines
//! never get span fields. At `info` the engine's debug span is not made at
//! all (`tracing` gives `Span::none()` without evaluating its fields).
//!
//! The format ([`Line`]) is the one the manager always had: an info,
//! warning or error event is `wfs-manager[HOST]: MESSAGE`, nothing more (no
//! time, level or target: tests and people read these lines); a debug or
//! trace event is `wfs-manager[HOST]: debug: MESSAGE FIELD=VALUE...` (so a
//! core trace line reads `...: trace: in ...` as it did before `tracing`),
//! its own fields first, then its spans'.

use std::fmt;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

static HOST: OnceLock<String> = OnceLock::new();

/// The target whose trace events `WFS_TRACE=1` turns on: the engine, which
/// traces every input and output of the page protocol's core.
pub const TRACE_TARGET: &str = "wfs_manager::engine";

/// Sets the host name used in the prefix. Only the first call counts.
pub fn set_host(host: &str) {
    let _ = HOST.set(host.to_string());
}

/// The prefix of every line, without the trailing space.
pub fn prefix() -> String {
    match HOST.get() {
        Some(h) => format!("wfs-manager[{h}]:"),
        None => "wfs-manager:".to_string(),
    }
}

/// The filter of `WFS_LOG` = `wfs_log` and `WFS_TRACE` = `wfs_trace`
/// (`None`: unset): `info`, then `WFS_LOG`'s directives, so that a
/// directive for some targets (`wfs_manager::engine=trace`) leaves the
/// others at `info`, and a bare level (`debug`, `warn`) replaces `info`.
/// Directives that do not parse are ignored (and reported on stderr by
/// `tracing_subscriber`).
pub fn filter(wfs_log: Option<&str>, wfs_trace: Option<&str>) -> EnvFilter {
    let f = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(format!("info,{}", wfs_log.unwrap_or("")));
    if wfs_trace == Some("1") {
        match format!("{TRACE_TARGET}=trace").parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        }
    } else {
        f
    }
}

/// The filter of this process's environment ([`filter`]).
pub fn env_filter() -> EnvFilter {
    let log = std::env::var("WFS_LOG").ok();
    let trace = std::env::var("WFS_TRACE").ok();
    filter(log.as_deref(), trace.as_deref())
}

/// The manager's line format (see the module's documentation).
pub struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match HOST.get() {
            Some(h) => write!(w, "wfs-manager[{h}]: ")?,
            None => w.write_str("wfs-manager: ")?,
        }
        let detailed = match *event.metadata().level() {
            Level::DEBUG => w.write_str("debug: ").map(|()| true)?,
            Level::TRACE => w.write_str("trace: ").map(|()| true)?,
            _ => false,
        };
        ctx.format_fields(w.by_ref(), event)?;
        if detailed {
            // The fields of the spans the event is in (innermost first),
            // but for those it has itself or an inner span had.
            let mut names = Names::default();
            event.record(&mut names);
            let mut pad = !names.0.is_empty();
            for span in ctx.event_scope().into_iter().flatten() {
                let ext = span.extensions();
                let Some(SpanFields(fields)) = ext.get::<SpanFields>() else {
                    continue;
                };
                for (name, value) in fields {
                    if names.0.contains(name) {
                        continue;
                    }
                    if pad {
                        w.write_char(' ')?;
                    }
                    write!(w, "{name}={value}")?;
                    names.0.push(name);
                    pad = true;
                }
            }
        }
        writeln!(w)
    }
}

/// The names of the fields an event records (a field whose value is
/// `None` records nothing).
#[derive(Default)]
struct Names(Vec<&'static str>);

impl Visit for Names {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        let name = field.name();
        self.0.push(name.strip_prefix("r#").unwrap_or(name));
    }
}

/// The fields a span recorded, as [`DefaultFields`] shows them:
/// (name, value) in the order recorded.
struct SpanFields(Vec<(&'static str, String)>);

impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let value = format!("{value:?}");
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }
}

/// The layer that keeps each span's fields ([`SpanFields`]) for [`Line`]
/// to append to the debug and trace events inside it. Spans only exist
/// when the filter enables them: at `info`, a `debug_span!` is never made.
struct KeepSpanFields;

impl<S> Layer<S> for KeepSpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = SpanFields(Vec::new());
        attrs.record(&mut fields);
        span.extensions_mut().replace(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(fields) => values.record(fields),
            None => {
                let mut fields = SpanFields(Vec::new());
                values.record(&mut fields);
                ext.insert(fields);
            }
        }
    }
}

/// A subscriber that writes [`Line`]s to `writer`, filtered by `filter`.
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(DefaultFields::new())
        .event_format(Line)
        .with_writer(writer)
        .finish()
        .with(KeepSpanFields)
}

/// Sends this process's events to stderr, filtered by `WFS_LOG` and
/// `WFS_TRACE`. Each line goes out in a single write, so lines of
/// concurrent threads never interleave. Only the first call counts.
pub fn init() {
    let _ = tracing::subscriber::set_global_default(subscriber(env_filter(), std::io::stderr));
}

/// `wlog!("peer {} connected", name)`: logs one line (an info event of
/// the caller's module).
#[macro_export]
macro_rules! wlog {
    ($($arg:tt)*) => {
        ::tracing::info!($($arg)*)
    };
}

/// `hex(x)`: `x` as a field value shown `0x...` (file ids, transactions).
pub fn hex(x: u64) -> tracing::field::DisplayValue<Hex> {
    tracing::field::display(Hex(x))
}

/// A number shown in hexadecimal, `0x...`.
#[derive(Clone, Copy)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    pub(crate) struct Buf(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What `f` logs under `filter`.
    pub(crate) fn captured(filter: EnvFilter, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        tracing::subscriber::with_default(subscriber(filter, buf.clone()), f);
        buf.text()
    }

    /// The line the old log module wrote for `msg`.
    fn old_line(msg: std::fmt::Arguments<'_>) -> String {
        format!("{} {}\n", prefix(), msg)
    }

    #[test]
    fn an_info_line_is_what_it_always_was() {
        set_host("h1");
        let (peer, n) = ("h2", 3);
        let got = captured(filter(None, None), || {
            wlog!("peer {peer} disconnected");
            wlog!("refused {} messages of {}: {:?}", n, peer, "why");
            tracing::warn!("cannot connect to peer {peer}");
            tracing::error!("plain");
        });
        let want = [
            old_line(format_args!("peer {peer} disconnected")),
            old_line(format_args!(
                "refused {} messages of {}: {:?}",
                n, peer, "why"
            )),
            old_line(format_args!("cannot connect to peer {peer}")),
            old_line(format_args!("plain")),
        ]
        .concat();
        assert_eq!(got, want);
        assert!(got.starts_with("wfs-manager[h1]: peer h2 disconnected\n"));
    }

    #[test]
    fn debug_is_hidden_by_default_and_shown_with_wfs_log_debug() {
        set_host("h1");
        let log = || {
            tracing::debug!(n = 2, "a detail");
            wlog!("news");
        };
        assert_eq!(captured(filter(None, None), log), "wfs-manager[h1]: news\n");
        assert_eq!(
            captured(filter(Some(""), Some("0")), log),
            "wfs-manager[h1]: news\n"
        );
        assert_eq!(
            captured(filter(Some("debug"), None), log),
            "wfs-manager[h1]: debug: a detail n=2\nwfs-manager[h1]: news\n"
        );
        // Only this module's.
        let this = module_path!();
        assert_eq!(
            captured(filter(Some(&format!("{this}=debug")), None), log),
            "wfs-manager[h1]: debug: a detail n=2\nwfs-manager[h1]: news\n"
        );
        assert_eq!(
            captured(filter(Some("wfs_manager::engine=debug"), None), log),
            "wfs-manager[h1]: news\n"
        );
        // Quieter than the default.
        assert_eq!(captured(filter(Some("warn"), None), log), "");
        assert_eq!(captured(filter(Some("off"), None), log), "");
        // A bad directive is ignored.
        assert_eq!(
            captured(filter(Some("=bad=,debug"), None), log),
            "wfs-manager[h1]: debug: a detail n=2\nwfs-manager[h1]: news\n"
        );
    }

    #[test]
    fn wfs_trace_turns_on_the_engines_trace_events() {
        set_host("h1");
        let log = || {
            tracing::trace!(target: "wfs_manager::engine", txn = %Hex(0x10), "in x");
            tracing::trace!(target: "wfs_manager::engine::opens", "opens");
            tracing::trace!("elsewhere");
        };
        assert_eq!(captured(filter(None, None), log), "");
        assert_eq!(captured(filter(None, Some("0")), log), "");
        assert_eq!(
            captured(filter(None, Some("1")), log),
            "wfs-manager[h1]: trace: in x txn=0x10\nwfs-manager[h1]: trace: opens\n"
        );
        // With WFS_LOG: both count.
        assert_eq!(
            captured(filter(Some("debug"), Some("1")), || {
                log();
                tracing::debug!("d");
            }),
            "wfs-manager[h1]: trace: in x txn=0x10\nwfs-manager[h1]: trace: opens\n\
             wfs-manager[h1]: debug: d\n"
        );
    }

    /// The span the engine handles an input in, as [`crate::engine`]
    /// makes it.
    fn txn_span(txn: Option<u64>) -> tracing::Span {
        tracing::debug_span!(
            target: "wfs_manager::engine",
            parent: None,
            "txn",
            file = %Hex(0xabc),
            page = 7u64,
            txn = txn.map(hex)
        )
    }

    #[test]
    fn a_debug_line_carries_the_fields_of_its_transaction() {
        set_host("h1");
        let got = captured(filter(Some("debug"), None), || {
            let span = txn_span(Some(0x30005));
            {
                let _in = span.enter();
                tracing::debug!(n = 2, "a detail");
                tracing::trace!("hidden");
            }
            tracing::debug!("after");
        });
        assert_eq!(
            got,
            "wfs-manager[h1]: debug: a detail n=2 file=0xabc page=7 txn=0x30005\n\
             wfs-manager[h1]: debug: after\n"
        );
        for f in [" txn=0x30005", " file=0xabc", " page=7"] {
            assert_eq!(got.matches(f).count(), 1, "{f}: {got}");
        }
        // A trace line too, and a field the span has no value for is not
        // shown.
        let got = captured(filter(None, Some("1")), || {
            let span = txn_span(None);
            let _in = span.enter();
            tracing::trace!(target: "wfs_manager::engine", "in x");
        });
        assert_eq!(got, "wfs-manager[h1]: trace: in x file=0xabc page=7\n");
    }

    #[test]
    fn an_info_line_in_a_transaction_is_what_it_always_was() {
        set_host("h1");
        let got = captured(filter(Some("debug"), None), || {
            let span = txn_span(Some(0x30005));
            let _in = span.enter();
            wlog!("peer h2: refused {}", "a Put");
            tracing::warn!("a warning");
            tracing::error!("an error");
        });
        assert_eq!(
            got,
            "wfs-manager[h1]: peer h2: refused a Put\n\
             wfs-manager[h1]: a warning\n\
             wfs-manager[h1]: an error\n"
        );
    }

    #[test]
    fn a_field_the_event_has_is_not_taken_from_its_span() {
        set_host("h1");
        let got = captured(filter(Some("debug"), None), || {
            let span = txn_span(Some(0x30005));
            let _in = span.enter();
            tracing::debug!(txn = %Hex(0x99), page = 8u64, "its own");
            // A field of the event left empty is the span's.
            tracing::debug!(txn = None::<u64>, "none of its own");
            // An inner span's field hides an outer one's.
            let inner = tracing::debug_span!("inner", txn = %Hex(0x77));
            let _inner = inner.enter();
            tracing::debug!("inner");
        });
        assert_eq!(
            got,
            "wfs-manager[h1]: debug: its own txn=0x99 page=8 file=0xabc\n\
             wfs-manager[h1]: debug: none of its own file=0xabc page=7 txn=0x30005\n\
             wfs-manager[h1]: debug: inner txn=0x77 file=0xabc page=7\n"
        );
    }

    #[test]
    fn at_info_no_transaction_span_is_made() {
        set_host("h1");
        let mut disabled = false;
        let got = captured(filter(None, None), || {
            let span = txn_span(Some(0x30005));
            disabled = span.is_disabled();
            let _in = span.enter();
            wlog!("news");
        });
        assert!(disabled);
        assert_eq!(got, "wfs-manager[h1]: news\n");
    }
}

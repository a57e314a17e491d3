"""The ``compaudit`` command line: a thin shell over the library.

Each command parses, makes one library call, renders, and returns an
:class:`~compaudit.errors.ExitStatus`. The process exit code is decided in one
place, :func:`decide_exit`, run by the ``main`` of the group and of every
built-in command (so a command invoked on its own exits the same way):

* 0 every gate passed, 1 a gate failed, 2 anything else: a
  :class:`~compaudit.errors.CompauditError` (one ``compaudit: error:`` line),
  a usage error, an interrupt (Ctrl-C or SIGTERM: ``compaudit: interrupted``,
  temporaries removed), or an unexpected exception (one
  ``compaudit: internal error:`` line and the command that shows its
  traceback). Click's own exceptions (exit code 1 by default) become 2;
  ``ctx.exit(code)`` and ``sys.exit(code)`` keep their code.
* ``-v/--verbose`` shows debug logging and tracebacks; ``-q/--quiet`` hides
  warnings, progress and ``wrote ...`` lines. Both are accepted before the
  command name and after it (after it wins).
* Library code warns (:class:`~compaudit.errors.CompauditWarning`) and logs
  (logger ``compaudit``) instead of printing; the CLI renders both on stderr
  as ``compaudit: warning: ...`` lines.

Built-in commands are listed in :data:`COMMANDS` and imported only when run
(or when their own help is shown), so ``compaudit --help`` and
``compaudit --version`` load neither torch, scipy nor numpy. Plugins add
commands through the ``register_commands`` hook of installed entry points.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import importlib
import io
import logging
import os
import shlex
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any, NamedTuple, TextIO, TypeVar

import click
from click.core import ParameterSource

from compaudit import __version__
from compaudit._io import WRITE_FAULTS, output_error
from compaudit._text import for_terminal
from compaudit.errors import CompauditError, CompauditWarning, ExitStatus

__all__ = [
    "COMMANDS",
    "CompauditCommand",
    "CompauditGroup",
    "LazyCommand",
    "build_cli",
    "command",
    "decide_exit",
    "fail",
    "is_quiet",
    "main",
    "output_options",
    "run_command",
    "verbosity",
]

F = TypeVar("F", bound=Callable[..., Any])

LOGGER = "compaudit"
"""Library modules log under this logger (``logging.getLogger(__name__)``)."""
ERR_INTERNAL = "internal error: {kind}: {message}"
HINT_INTERNAL = (
    "this is a bug in compaudit; please report it with the traceback that `{command}` shows"
)
HINT_INTERNAL_VERBOSE = "this is a bug in compaudit; please report it with the traceback above"
ERR_VERBOSE_AND_QUIET = "give -v/--verbose or -q/--quiet, not both"
ERR_PLUGIN_COMMANDS = "plugin commands not loaded: {reason}"
MSG_INTERRUPTED = "interrupted"
ERR_STDOUT_CLOSED = "standard output was closed before everything was printed (broken pipe)"

QUIET, NORMAL, VERBOSE = -1, 0, 1
_LOG_LEVELS = {QUIET: logging.ERROR, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}
_VERBOSITY: contextvars.ContextVar[int] = contextvars.ContextVar(
    "compaudit_verbosity", default=NORMAL
)


class LazyCommand(NamedTuple):
    """A built-in command known by name before its module is imported."""

    module: str
    attribute: str
    help: str
    """Short help for ``compaudit --help`` (a test keeps it equal to the command's)."""


COMMANDS: dict[str, LazyCommand] = {
    "check": LazyCommand(
        "compaudit.cli.report",
        "check_command",
        "Gate a release: exit 0 when every gate passes, 1 when one fails, 2 on error.",
    ),
    "demo": LazyCommand(
        "compaudit.cli.demo",
        "command",
        "Train a small real population (dense, two pruning levels, int8) and audit it.",
    ),
    "fit-data": LazyCommand(
        "compaudit.cli.fit_data",
        "command",
        "Fit the preprocessing of TRAIN_SPEC (the model's training data) into a prep file.",
    ),
    "init": LazyCommand(
        "compaudit.cli.init",
        "command",
        "Write a starter policy (.compaudit.yaml) and CI workflow into a repository.",
    ),
    "plugins": LazyCommand(
        "compaudit.cli.plugins",
        "command",
        "List registered plugins (built-in and installed) and the hooks they implement.",
    ),
    "predict": LazyCommand(
        "compaudit.cli.predict",
        "command",
        "Run the models in SPEC (files, globs, directories, module:factory) on --data.",
    ),
    "report": LazyCommand(
        "compaudit.cli.report",
        "report_command",
        "Audit candidates against the reference and write the report.",
    ),
    "schema": LazyCommand(
        "compaudit.cli.schema",
        "command",
        "Print the JSON Schema of a policy file or of report.json.",
    ),
    "train": LazyCommand(
        "compaudit.cli.train",
        "command",
        "Train dense, pruned and quantized populations from a RECIPE (YAML).",
    ),
}
"""Built-in commands by name: where each lives and its one-line help."""


# -- verbosity -----------------------------------------------------------------


def verbosity() -> int:
    """The verbosity of the command being run: -1 with ``-q``, 1 with ``-v``, else 0."""
    return _VERBOSITY.get()


def is_quiet() -> bool:
    """Whether ``-q/--quiet`` was given (no warnings, progress or ``wrote`` lines)."""
    return verbosity() <= QUIET


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    name = param.name or ""
    if not value or ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
        return
    other = "quiet" if name == "verbose" else "verbose"
    if ctx.get_parameter_source(other) is ParameterSource.COMMANDLINE:
        raise click.UsageError(ERR_VERBOSE_AND_QUIET, ctx=ctx)
    level = VERBOSE if name == "verbose" else QUIET
    _VERBOSITY.set(level)
    logging.getLogger(LOGGER).setLevel(_LOG_LEVELS[level])


_VERBOSE_HELP = "Show debug messages, and the traceback of an error."
_QUIET_HELP = "Hide warnings and progress; errors and results still show."


def _output_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help=_VERBOSE_HELP,
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help=_QUIET_HELP,
        ),
    ]


def output_options(fn: F) -> F:
    """Add ``-v/--verbose`` and ``-q/--quiet`` to a click command (a decorator).

    The built-in commands get them from :func:`command`; a plugin command may
    use this decorator so that the flags work after its name too (before it,
    on the ``compaudit`` group, they always work).
    """
    fn = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity, help=_QUIET_HELP
    )(fn)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_set_verbosity,
        help=_VERBOSE_HELP,
    )(fn)


# -- rendering library warnings and logs -----------------------------------------


class _EchoHandler(logging.Handler):
    """``compaudit: <level>: <message>`` on stderr (INFO without a level)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            click.echo(f"compaudit: {level}{for_terminal(record.getMessage())}", err=True)
            if record.exc_info and verbosity() >= VERBOSE:
                tb = "".join(traceback.format_exception(*record.exc_info))
                click.echo(_safe_lines(tb), err=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _rendering() -> Iterator[None]:
    """Render library warnings and ``compaudit`` log records while a command runs."""
    logger = logging.getLogger(LOGGER)
    handler = _EchoHandler()
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(_LOG_LEVELS[verbosity()])
    with warnings.catch_warnings():
        warnings.simplefilter("default", CompauditWarning)
        show_other = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if is_quiet() and issubclass(category, UserWarning):
                return
            if issubclass(category, CompauditWarning):
                click.echo(f"compaudit: warning: {for_terminal(message)}", err=True)
            else:
                show_other(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved_level)


# -- the one exit decision ---------------------------------------------------------


def _safe_lines(text: str) -> str:
    """Several lines for the terminal: each one's control characters shown escaped.

    Tabs (click indents a choice list with them) become spaces first: they are layout,
    not something a file name smuggled in.
    """
    return "\n".join(for_terminal(line.expandtabs(4)) for line in text.rstrip().splitlines())


def fail(message: str) -> ExitStatus:
    """Print ``compaudit: error: <message>`` to stderr and return the error status.

    The message quotes file and class names, which are the user's: it is shown
    as one line with control characters escaped (an ESC in a name must not reach
    the terminal; a newline must not make two lines).
    """
    click.echo(f"compaudit: error: {for_terminal(message)}", err=True)
    return ExitStatus.ERROR


def _traceback(exc: BaseException) -> str:
    return _safe_lines("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def _internal_error(exc: Exception, *, argv: Sequence[str], prog: str) -> ExitStatus:
    verbose = verbosity() >= VERBOSE
    if verbose:
        click.echo(_traceback(exc), err=True)
    message = " ".join(str(exc).split("\n")).strip()
    kind = type(exc).__qualname__
    line = ERR_INTERNAL.format(kind=kind, message=message) if message else f"internal error: {kind}"
    click.echo(f"compaudit: {for_terminal(line)}", err=True)
    if verbose:
        hint = HINT_INTERNAL_VERBOSE
    else:
        hint = HINT_INTERNAL.format(command=shlex.join([*prog.split(), "-v", *argv]))
    click.echo(f"compaudit: {for_terminal(hint)}", err=True)
    return ExitStatus.ERROR


def status_of(value: object) -> int:
    """The exit code of what a command returned (None: 0; an int is kept)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return int(ExitStatus.OK)
    try:
        return int(ExitStatus(value))
    except ValueError:
        return int(value)  # a plugin's own ctx.exit(code)


def decide_exit(call: Callable[[], Any], *, argv: Sequence[str], prog: str) -> int:
    """Run ``call`` (a click ``main`` in non-standalone mode) and decide the exit code.

    Parameters
    ----------
    call : callable
        Runs the command line and returns the command's value (an
        :class:`ExitStatus`, None for 0, or the code of a ``ctx.exit``).
    argv : sequence of str
        The arguments, for the hint that reproduces an internal error.
    prog : str
        The program as invoked (``compaudit`` or ``python -m compaudit``).

    Returns
    -------
    int
        0 pass, 1 a gate failed, 2 a usage, input or internal error or an
        interrupt (another code only from a plugin's explicit exit).
    """
    try:
        return status_of(call())
    except CompauditError as exc:
        if verbosity() >= VERBOSE:
            click.echo(_traceback(exc), err=True)
        fail(str(exc))
        return int(exc.exit_status)
    except click.ClickException as exc:
        # Usage errors are 2 already; click's default of 1 means "gate failed" here.
        # They quote the arguments (a file or command name): shown with controls escaped.
        shown = io.StringIO()
        exc.show(file=shown)
        click.echo(_safe_lines(shown.getvalue()), err=True)
        return int(ExitStatus.ERROR)
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"compaudit: {MSG_INTERRUPTED}", err=True)
        return int(ExitStatus.ERROR)
    except SystemExit as exc:
        # click answers a closed stdout (EPIPE: ``| head``) with sys.exit(1), the code
        # for "a gate failed"; report files are written before the terminal output.
        if _stdout_closed(exc):
            fail(ERR_STDOUT_CLOSED)
            return int(ExitStatus.ERROR)
        raise
    except OSError as exc:
        if exc.errno not in WRITE_FAULTS:
            return int(_internal_error(exc, argv=argv, prog=prog))
        # A full, read-only or size-limited place is the user's to fix, not a bug, even
        # where a write was not given its own message.
        if verbosity() >= VERBOSE:
            click.echo(_traceback(exc), err=True)
        fail(str(output_error(exc, option="output path")))
        return int(ExitStatus.ERROR)
    except Exception as exc:
        return int(_internal_error(exc, argv=argv, prog=prog))


def _stdout_closed(exc: SystemExit) -> bool:
    """Whether click ended the run because stdout was closed (EPIPE)."""
    cause = exc.__context__
    if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
        return True
    # click swaps the closed stream for its flush-pacifying wrapper, then exits 1 outside
    # the except block (no context); the test pins this against click's behaviour.
    return exc.code == 1 and type(sys.stdout).__name__ == "_PacifyFlushWrapper"


class _Interrupted(KeyboardInterrupt):
    """An interrupt raised by our own handler rather than Python's default one.

    A plain :class:`KeyboardInterrupt` that passes through C code running Python
    source (``PyRun_*``, which some extension modules call while they import)
    marks the interpreter as interrupted for good: it then kills itself with
    SIGINT at exit (status -2) even though :func:`decide_exit` caught the
    interrupt and chose 2. CPython checks the exact type, so a subclass does not
    set that mark, and every ``except KeyboardInterrupt`` still catches it.
    """


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, ``kill``) and Ctrl-C end a command the same way.

    The same path as :class:`KeyboardInterrupt`: every temporary is removed on
    the way out and :func:`decide_exit` answers 2, ``compaudit: interrupted``.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, previous in saved.items():
        if previous is not signal.SIG_IGN:  # an ignored Ctrl-C (nohup, a pool) stays ignored
            signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)


_EXITING: list[bool] = []
"""Set once a standalone command has decided its exit code and is leaving."""


def _late_interrupt(signum: int, frame: FrameType | None) -> None:
    # After the decision, while threads are joined and atexit runs: still an interrupt.
    sys.stderr.write(f"compaudit: {MSG_INTERRUPTED}\n")
    sys.stderr.flush()
    os._exit(int(ExitStatus.ERROR))


def _exit_with(code: int) -> None:
    """``sys.exit(code)``, with Ctrl-C and SIGTERM on the way out still an interrupt (2).

    Until atexit has run, a signal ends the process with 2 and ``compaudit:
    interrupted`` (:func:`_late_interrupt`). The interpreter then resets its handlers
    to the system default before it tears the modules down (about 0.6 s with torch),
    where a signal would kill it with 130 and no message; :func:`_ignore_late_signals`
    ignores them for that last stretch, so the decided code stands.
    """
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _late_interrupt)
        _EXITING.append(True)
    sys.exit(code)


def _ignore_late_signals() -> None:
    # Registered when this module loads, so it runs after the atexit callbacks of
    # everything imported later (ray, torch...), as the last Python code of the process;
    # an ignored handler is the one kind the interpreter does not reset at shutdown.
    if _EXITING and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


atexit.register(_ignore_late_signals)


def _main(
    command: click.Command,
    base_main: Callable[..., Any],
    args: Sequence[str] | None,
    prog_name: str | None,
    complete_var: str | None,
    standalone_mode: bool,
    windows_expand_args: bool,
    extra: Mapping[str, Any],
) -> Any:
    argv = list(sys.argv[1:] if args is None else args)
    prog = prog_name or command.name or "compaudit"
    token = _VERBOSITY.set(NORMAL)
    try:
        with _rendering(), _terminate_as_interrupt():
            code = decide_exit(
                lambda: base_main(
                    args, prog_name, complete_var, False, windows_expand_args, **extra
                ),
                argv=argv,
                prog=prog,
            )
    finally:
        _VERBOSITY.reset(token)
    if standalone_mode:
        sys.exit(code)
    return code


def run_command(fn: Callable[[], ExitStatus | int | None]) -> ExitStatus:
    """Run a command body and return its status (None is OK).

    Exceptions are not caught here: they reach :func:`decide_exit`, which
    maps them to exit code 2.
    """
    status = fn()
    return ExitStatus.OK if status is None else ExitStatus(status)


# -- commands and the group ----------------------------------------------------------


class _DecidedExit(click.Command):
    """``main`` exits (or returns, not standalone) with :func:`decide_exit`'s code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run; exit (or return, not standalone) with the decided code."""
        return _main(
            self,
            super().main,
            args,
            prog_name,
            complete_var,
            standalone_mode,
            windows_expand_args,
            extra,
        )


class CompauditCommand(_DecidedExit):
    """A command whose exit code is decided by :func:`decide_exit`, also when run alone."""


def command(name: str, **attrs: Any) -> Callable[[Callable[..., Any]], CompauditCommand]:
    """``click.command`` for built-in commands: :class:`CompauditCommand` plus ``-v``/``-q``."""

    def decorate(fn: Callable[..., Any]) -> CompauditCommand:
        cmd = click.command(name, cls=CompauditCommand, **attrs)(fn)
        cmd.params.extend(_output_params())
        return cmd

    return decorate


def _load_plugin_commands() -> dict[str, click.Command]:
    """Commands that installed plugins add (entry points only: no built-in plugin imports)."""
    from compaudit.plugins import Registry

    group = click.Group()
    try:
        Registry(builtins=False).add_commands(group)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, CompauditError) else f"{type(exc).__name__}: {exc}"
        warnings.warn(ERR_PLUGIN_COMMANDS.format(reason=reason), CompauditWarning, stacklevel=2)
    return dict(group.commands)


class CompauditGroup(_DecidedExit, click.Group):
    """The ``compaudit`` group: lazy built-in commands, plugin commands, one exit decision.

    Lookup order: commands added with ``add_command``, then plugin commands
    (so a plugin may replace a built-in, as before), then :data:`COMMANDS`.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy: dict[str, LazyCommand] = dict(COMMANDS if lazy is None else lazy)
        self._plugin_commands: dict[str, click.Command] | None = None

    def plugin_commands(self) -> dict[str, click.Command]:
        """Commands added by plugins, loaded once per group."""
        if self._plugin_commands is None:
            self._plugin_commands = _load_plugin_commands()
        return self._plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, without importing the built-in command modules."""
        return sorted({*self.commands, *self.plugin_commands(), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, importing its module if it is a built-in."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        plugin = self.plugin_commands().get(cmd_name)
        if plugin is not None:
            return plugin
        spec = self.lazy.get(cmd_name)
        if spec is None:
            return None
        logging.getLogger(__name__).debug("importing %s for '%s'", spec.module, cmd_name)
        try:
            module = importlib.import_module(spec.module)
        except ModuleNotFoundError as exc:
            if exc.name == spec.module:
                return None  # command not written yet in this checkout
            raise
        cmd: click.Command = getattr(module, spec.attribute)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from :data:`COMMANDS` for the built-ins."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name) or self.plugin_commands().get(name)
            if cmd is None:  # a stand-in that only knows the help, not the module
                cmd = click.Command(name, help=self.lazy[name].help)
            if not cmd.hidden:
                rows.append((name, cmd))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


def build_cli() -> CompauditGroup:
    """A fresh ``compaudit`` group (built-in commands load when used; plugins when listed)."""
    group = CompauditGroup(
        name="compaudit",
        help="Audit compressed neural networks against their reference model.",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        params=_output_params(),
    )
    click.version_option(__version__, prog_name="compaudit")(group)
    return group


BLAS_THREADS_VAR = "OPENBLAS_NUM_THREADS"


def _one_blas_thread() -> None:
    """Run numpy's and scipy's OpenBLAS with one thread unless the user chose otherwise.

    Set before numpy loads, since each library reads it once. The audit's products are
    small: extra BLAS threads only spin, at start-up and after every product (about 0.7 s
    of CPU in a five-candidate ``compaudit report`` on 2 cores, and no faster in wall
    time). torch and ONNX Runtime keep their own thread pools.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault(BLAS_THREADS_VAR, "1")


def main(prog_name: str = "compaudit") -> None:
    """Console-script entry point (``python -m compaudit`` passes its own ``prog_name``)."""
    _one_blas_thread()
    # Not standalone: the code comes back here, and the process leaves through
    # _exit_with (a library or test calling the group's main() keeps its own handlers).
    _exit_with(int(build_cli().main(prog_name=prog_name, standalone_mode=False)))

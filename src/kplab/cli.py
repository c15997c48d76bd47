"""The `kplab` command: wiring only. Each part keeps its commands beside its code."""

import sys

import click

from kplab import __version__
from kplab.errors import KplabError


class _Group(click.Group):
    """Turns user-facing errors into one clear line and exit code 2 instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KplabError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="kplab")
def main():
    """kplab: facial keypoints, semi-supervised digits, convolution from scratch."""


def _register():
    # Each part owns a `commands.py` with its click commands; missing parts are simply absent.
    import importlib

    for module, names in (
        ("kplab.faces.commands", ("train", "evaluate")),
        ("kplab.faces.deploy_commands", ("predict", "export", "bench")),
        ("kplab.digits.commands", ("digits",)),
        ("kplab.scratch.commands", ("fundamentals",)),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        for name in names:
            if hasattr(mod, name):
                main.add_command(getattr(mod, name))


_register()

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


# Each part keeps its click commands beside its code (heavy imports stay inside the commands).
from kplab.digits.commands import digits  # noqa: E402
from kplab.faces.commands import crop, evaluate, train  # noqa: E402
from kplab.faces.deploy_commands import bench, export, predict  # noqa: E402
from kplab.faces.pack_command import pack  # noqa: E402
from kplab.scratch.commands import fundamentals  # noqa: E402
from kplab.serve.commands import serve  # noqa: E402

for _command in (train, evaluate, crop, pack, predict, export, bench, serve, digits, fundamentals):
    main.add_command(_command)

if __name__ == "__main__":
    main()

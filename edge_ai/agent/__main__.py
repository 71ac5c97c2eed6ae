"""``python -m edge_ai.agent --node NAME --port P`` (the agent wheel's ``edge-agent`` command)."""

import typer

from edge_ai.agent.cli import agent


def main() -> None:
    typer.run(agent)


if __name__ == "__main__":
    main()

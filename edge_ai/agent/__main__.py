"""``python -m edge_ai.agent --node NAME --port P``"""

import typer

from edge_ai.agent.cli import agent

if __name__ == "__main__":
    typer.run(agent)

from tests.helpers.container_fixtures import *  # noqa: F403

"""The optimizer's shared model: the fleet as the policies see it (``state``, ``geo``), one cycle's
inputs (``context``), the changes the policies propose (``plan``) and the policies' tuning
(``config``). Below both ``engine`` (which runs cycles) and ``policies`` (which decide): it imports
neither."""

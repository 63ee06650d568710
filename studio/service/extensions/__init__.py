"""Extensions: drop a folder into extensions/, it registers samplers, preprocessors, tabs, scripts
or generation hooks through `studio.api` (docs/extensions.md)."""

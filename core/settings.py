"""The settings sources both apps use: arguments, then the environment, then one TOML file."""

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource
from pydantic_settings.sources import PathType


class TomlSettings(BaseSettings):
    """Precedence: constructor arguments, the environment (the subclass's `env_prefix`), then
    the TOML file `toml_file()` names. No .env file and no secrets directory: a lab PC's
    settings live in that one file."""

    @classmethod
    def toml_file(cls) -> PathType | None:
        """The file to read, asked on each construction; by default `model_config`'s."""
        return cls.model_config.get("toml_file")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file())
        return (init_settings, env_settings, toml)

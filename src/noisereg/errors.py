class SettingError(ValueError):
    """Bad input from the user: the message is one line that names the setting and the fix."""

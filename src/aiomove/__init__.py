"""aiomove: an asyncio-native DICOM retrieve service."""

__version__ = "0.1.0"

"""S3-compatible storage through aioboto3 (AWS, MinIO, moto's server in the tests)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioboto3
import anyio
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from storage.base import CHUNK, ObjectNotFound, check_key
from storage.keys import check_published

if TYPE_CHECKING:
    from config import Settings

#: parts of a multipart upload; S3 wants at least 5 MiB for every part but the last
PART_SIZE = 8 * 1024 * 1024
URL_TTL_S = 6 * 3600


def _config() -> AioConfig:
    # The checksum settings keep MinIO-like stores working (boto/boto3#4392).
    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as source:
        while chunk := await source.read(CHUNK):
            yield chunk


class S3Storage:
    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        public_endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket = bucket
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._endpoints = {"api": endpoint_url, "public": public_endpoint_url or endpoint_url}
        self._clients: dict[str, Any] = {}
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        url = settings.effective_storage_url
        bucket = url.removeprefix("s3://").strip("/")
        if not bucket or "/" in bucket:
            raise ValueError(f"COWATCH_STORAGE_URL must be s3://<bucket>, not {url}")
        return cls(
            bucket,
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )

    async def _client(self, which: str = "api") -> Any:
        """One long-lived client per endpoint, opened on first use (SigV4 signs the Host)."""
        if which not in self._clients:
            async with self._lock:
                if which not in self._clients:
                    client = self._session.client(
                        "s3", endpoint_url=self._endpoints[which], config=_config()
                    )
                    self._clients[which] = await self._stack.enter_async_context(client)
        return self._clients[which]

    async def create_bucket(self) -> None:
        """For development and tests; production buckets are made by whoever runs the store."""
        client = await self._client()
        try:
            await client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """One PUT for small objects, a multipart upload of PART_SIZE parts for large ones."""
        check_key(key)
        client = await self._client()
        extra = {"ContentType": content_type} if content_type else {}
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= PART_SIZE:
                    if upload_id is None:
                        created = await client.create_multipart_upload(
                            Bucket=self.bucket, Key=key, **extra
                        )
                        upload_id = created["UploadId"]
                    part = bytes(buffer[:PART_SIZE])
                    del buffer[:PART_SIZE]
                    number = len(parts) + 1
                    sent = await client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                    )
                    parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            if upload_id is None:
                await client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), **extra)
                return total
            if buffer:
                number = len(parts) + 1
                sent = await client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(buffer),
                )
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            upload_id = None
            return total
        finally:
            if upload_id is not None:
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> int:
        return await self.put_stream(key, _file_chunks(path), content_type=content_type)

    async def stream(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        client = await self._client()
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            response = await client.get_object(
                Bucket=self.bucket, Key=check_key(key), Range=byte_range
            )
        except ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from exc
            raise
        body = response["Body"]
        try:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk
        finally:
            body.close()

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key, start=start, end=end)])

    async def size(self, key: str) -> int:
        client = await self._client()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from exc
            raise
        return int(head["ContentLength"])

    @asynccontextmanager
    async def local_copy(self, key: str, *, directory: Path | None = None) -> AsyncIterator[Path]:
        download = await anyio.to_thread.run_sync(
            partial(tempfile.mkdtemp, prefix="cowatch-s3-", dir=directory)
        )
        try:
            path = Path(download) / "object"
            async with await anyio.open_file(path, "wb") as out:
                async for chunk in self.stream(key):
                    await out.write(chunk)
            yield path
        finally:
            await anyio.to_thread.run_sync(partial(shutil.rmtree, download, ignore_errors=True))

    async def keys(self, prefix: str = "") -> list[str]:
        client = await self._client()
        found: list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    async def delete(self, key: str) -> None:
        client = await self._client()
        await client.delete_object(Bucket=self.bucket, Key=check_key(key))

    async def delete_prefix(self, prefix: str) -> None:
        client = await self._client()
        keys = await self.keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            await client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )

    async def url(self, key: str) -> str:
        """A presigned GET of published media, signed for the public endpoint the browser will
        talk to; ValueError for anything else (a source is never presigned)."""
        client = await self._client("public")
        url: str = await client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": check_published(check_key(key))},
            ExpiresIn=URL_TTL_S,
        )
        return url

    def url_now(self, key: str) -> str | None:
        """Presigning may refresh credentials (I/O): always through `url`."""
        return None

    async def ping(self) -> None:
        client = await self._client()
        await client.head_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()

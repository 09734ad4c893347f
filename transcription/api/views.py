"""REST API: a user's own sessions (list, detail, export, delete). Same isolation as the pages."""
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from .. import selectors, services
from ..sources import stream_sessions, uploads
from ..exports import EXPORT_FORMATS, export_response
from ..jobs import TooManyJobs, job_start
from ..models import Job, TranscriptionSession, Voice
from .. import protocol
from ..translation import get_translator
from ..realtime.control import announce_correction, announce_speakers, stop_session
from ..voices import EnrolmentBusy, NoVoice, enrol
from .serializers import (CorrectionSerializer, EnrolSerializer, JobSerializer, SegmentSerializer,
                          SessionDetailSerializer, SessionFilterSerializer, SessionSerializer, StreamSerializer,
                          UploadSerializer, VoiceSerializer)


class TranslateRequestSerializer(serializers.Serializer):
    target = serializers.CharField(max_length=16, help_text="Language to translate into, e.g. 'en'")


@extend_schema_view(list=extend_schema(parameters=[SessionFilterSerializer]))
class SessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                     viewsets.GenericViewSet):
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_serializer_class(self):
        return SessionDetailSerializer if self.action == "retrieve" else SessionSerializer

    def get_queryset(self):
        user = self.request.user
        if self.action != "list":  # someone else's session is a 404, as on the pages
            return selectors.sessions_with_transcript_for_user(user=user)
        params = SessionFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        f = params.validated_data
        return selectors.session_list_for_user(user=user, search=f.get("q", ""), language=f.get("language"),
                                               since=f.get("since"), until=f.get("until"))

    @extend_schema(request={"multipart/form-data": UploadSerializer, "application/json": StreamSerializer},
                   responses={202: SessionDetailSerializer, 201: SessionDetailSerializer})
    def create(self, request):
        """Upload a recording: it becomes a session, transcribed in the background. Answers 202; the
        detail then shows `"status": "processing"` with `progress` (0-1), and finally `"ended"`. A refused
        file gets 400 with a `code` (not_audio, empty, too_large, too_long, unsupported_language,
        translation_unsupported, too_many_sessions) and nothing is stored.

        Or, as JSON with `source_url`, pull a live stream: answers 201 with an active live session that
        ends by itself when the stream ends. Refusals: 400 `source_not_allowed` (no connection was
        made), `source_unreachable`, `bad_request`, a language code, `too_many_sessions`, `busy`."""
        if "source_url" in request.data:
            return self._pull_stream(request)
        params = UploadSerializer(data=request.data)
        if not params.is_valid():
            empty = any(getattr(e, "code", "") == "empty" for e in params.errors.get("file", []))
            code = uploads.EMPTY if empty else protocol.BAD_REQUEST
            return Response({"code": code, "detail": params.errors}, status=status.HTTP_400_BAD_REQUEST)
        f = params.validated_data
        try:
            fields = uploads.upload_fields(language=f["language"], translate_to=f["translate_to"],
                                           vocabulary=f["vocabulary"])
            session = uploads.accept_file(user=request.user, file=f["file"], fields=fields)
        except uploads.UploadError as exc:
            return Response({"code": exc.code, "detail": str(exc), "field": exc.param},
                            status=status.HTTP_400_BAD_REQUEST)
        session = selectors.sessions_with_transcript_for_user(user=request.user).get(pk=session.pk)
        return Response(SessionDetailSerializer(session, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)

    def _pull_stream(self, request):
        params = StreamSerializer(data=request.data)
        if not params.is_valid():
            return Response({"code": protocol.BAD_REQUEST, "detail": params.errors}, status=status.HTTP_400_BAD_REQUEST)
        f = params.validated_data
        fields = {"lang": f.get("language") or settings.STT_DEFAULT_LANGUAGE, "translate_to": f["translate_to"],
                  "vocabulary": f["vocabulary"], "speakers": f["speakers"]}
        try:
            session_id = stream_sessions.start(user=request.user, url=f["source_url"], fields=fields)
        except stream_sessions.REFUSALS as exc:
            return Response({"code": exc.code, "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except stream_sessions.NoServerLoop as exc:
            return Response({"code": protocol.BUSY, "detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        session = selectors.sessions_with_transcript_for_user(user=request.user).get(pk=session_id)
        return Response(SessionDetailSerializer(session, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: OpenApiResponse(description="The session is told to stop"),
                                            409: OpenApiResponse(description="The session is not running")})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Stop a running live session (a pulled stream has no socket to send `end`): it finishes its
        phrase, stores it and ends with reason `end`."""
        session = self.get_object()
        if session.status != TranscriptionSession.Status.ACTIVE:
            return Response({"code": "not_running", "detail": "this session is not running"},
                            status=status.HTTP_409_CONFLICT)
        if not stop_session(session):
            return Response({"code": protocol.LIVE_UNAVAILABLE, "detail": "the session could not be reached"},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "stopping"}, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance):
        """A running session (a stream being pulled, a live socket) is stopped first, wherever it runs:
        nothing goes on pulling or recognising for a session that is gone."""
        stop_session(instance)
        services.session_delete(session=instance)

    @extend_schema(
        parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(EXPORT_FORMATS))],
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="The transcript file")},
    )
    @action(detail=True, methods=["get"], url_path=r"export/(?P<fmt>[a-z]+)")
    def export(self, request, pk=None, fmt=None):
        """The transcript as txt, srt, vtt or json, as downloaded from the session page."""
        if fmt not in EXPORT_FORMATS:
            raise NotFound("Unknown export format")
        return export_response(self.get_object(), fmt)

    @extend_schema(request=TranslateRequestSerializer, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def translate(self, request, pk=None):
        """Translate the session's phrases into `target` in the background (202, with the job). Its
        progress and the translations show in the session's detail; a request for a translation
        that is already running answers with that job."""
        session = self.get_object()
        params = TranslateRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        target = params.validated_data["target"]
        translator = get_translator()
        if not translator.supports(source=session.language, target=target):
            return Response({"code": protocol.TRANSLATION_UNSUPPORTED,
                             "detail": f"the translator {translator.name!r} cannot translate into {target!r}"},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            job, _ = job_start(session=session, kind=Job.Kind.TRANSLATE, language=target)
        except TooManyJobs as exc:
            return Response({"code": exc.code, "detail": exc.message}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"application/json": {"type": "object", "additionalProperties": {"type": "string"}}},
                   responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def speakers(self, request, pk=None):
        """Name speaker labels: `{"S1": "민수", "S2": "지영"}` (an empty name gives the label back).
        Exports, viewers (a `speakers` event) and the admin show the names."""
        session = self.get_object()
        if not isinstance(request.data, dict) or not all(isinstance(v, str) for v in request.data.values()):
            return Response({"code": protocol.BAD_REQUEST, "detail": 'send {"S1": "name", ...}'},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            names = services.session_name_speakers(session=session, names=dict(request.data))
        except ValueError as exc:
            return Response({"code": protocol.BAD_REQUEST, "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        announce_speakers(session)
        return Response({"speaker_names": names})

    @extend_schema(request=EnrolSerializer, responses={201: VoiceSerializer})
    @action(detail=True, methods=["post"])
    def voices(self, request, pk=None):
        """Save a labelled speaker's voice under a name (`{"speaker": "S1", "name": "민수"}`): the label is
        named now, and in your later sessions a matching speaker is named live. Needs the session's kept
        audio. A voice of the same name is replaced."""
        session = self.get_object()
        params = EnrolSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            voice = enrol(session, params.validated_data["speaker"], params.validated_data["name"])
        except EnrolmentBusy as exc:
            return Response({"code": "too_many_requests", "detail": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS,
                            headers={"Retry-After": "2"})
        except NoVoice as exc:
            return Response({"code": protocol.BAD_REQUEST, "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        announce_speakers(session)
        return Response(VoiceSerializer(voice).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CorrectionSerializer, responses={200: SegmentSerializer},
                   parameters=[OpenApiParameter("segment_id", OpenApiTypes.INT, OpenApiParameter.PATH)])
    @action(detail=True, methods=["patch"], url_path=r"segments/(?P<segment_id>[0-9]+)")
    def segment(self, request, pk=None, segment_id=None):
        """Correct one phrase (its `id` in the detail, `segment` in the socket's events). The original
        is kept; the speaker's socket and live viewers get a `correction` event."""
        segment = selectors.segment_get_for_user(user=request.user, session_id=pk, segment_id=segment_id)
        params = CorrectionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            segment = services.segment_correct(segment=segment, text=params.validated_data["text"], editor=request.user)
        except ValueError as exc:
            return Response({"text": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        announce_correction(segment)
        return Response(SegmentSerializer(segment).data)


class VoiceViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your enrolled voices (list, delete). Deleting one deletes all that was kept of it. Another user's
    voice is a 404."""

    serializer_class = VoiceSerializer
    queryset = Voice.objects.none()  # (for the schema; requests get their user's own)

    def get_queryset(self):
        return Voice.objects.filter(owner=self.request.user)

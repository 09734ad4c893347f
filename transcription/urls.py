from django.urls import path

from . import views
from .heavy import off_the_shared_thread as heavy

app_name = "transcription"

urlpatterns = [
    path("", views.recorder, name="recorder"),
    path("signup/", views.signup, name="signup"),
    path("upload/", heavy(views.upload), name="upload"),
    path("streams/", heavy(views.stream_start), name="stream_start"),
    path("sessions/", heavy(views.session_list), name="session_list"),
    path("sessions/<uuid:session_id>/", heavy(views.session_detail), name="session_detail"),
    path("sessions/<uuid:session_id>/delete/", views.session_delete, name="session_delete"),
    path("sessions/<uuid:session_id>/rename/", views.session_rename, name="session_rename"),
    path("sessions/<uuid:session_id>/speakers/", views.session_speakers, name="session_speakers"),
    path("sessions/<uuid:session_id>/voice/", heavy(views.session_voice), name="session_voice"),
    path("sessions/<uuid:session_id>/translate/", views.session_translate, name="session_translate"),
    path("sessions/<uuid:session_id>/audio.wav", views.session_audio, name="session_audio"),
    path("sessions/<uuid:session_id>/export.<str:fmt>", heavy(views.session_export), name="session_export"),
    path("sessions/<uuid:session_id>/live/", views.live_own, name="live_own"),
    path("sessions/<uuid:session_id>/stop/", views.session_stop, name="session_stop"),
    path("sessions/<uuid:session_id>/share/", views.share_create, name="share_create"),
    path("sessions/<uuid:session_id>/share/<int:share_id>/revoke/", views.share_revoke, name="share_revoke"),
    path("live/<str:token>/", views.live_shared, name="live_shared"),
    path("live/<str:token>/overlay/", views.overlay_shared, name="overlay_shared"),
    path("live/<str:token>/captions.vtt", views.captions_shared, name="captions_shared"),
    path("live/<str:token>/captions.m3u8", views.captions_hls_shared, name="captions_hls_shared"),
    path("live/<str:token>/captions/<int:number>.vtt", views.caption_segment_shared, name="caption_segment_shared"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/glossary/", views.glossary, name="glossary"),
    path("settings/voices/", views.voices, name="voices"),
    path("settings/voices/<int:voice_id>/delete/", views.voice_delete, name="voice_delete"),
    path("settings/tokens/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
